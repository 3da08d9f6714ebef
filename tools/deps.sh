#!/bin/sh
# Make sure the build dependencies are installed: install them when we are
# root, otherwise name them in one clear error.
set -e
need=""
[ -f /usr/include/urcu-bp.h ] || [ -f /usr/include/x86_64-linux-gnu/urcu-bp.h ] || \
	pkg-config --exists liburcu-bp 2>/dev/null || need="$need liburcu-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "hugemm: installing$need" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $need >/dev/null
	exit 0
fi
echo "hugemm: missing build dependencies:$need — install them with: sudo apt-get install$need" >&2
exit 1
