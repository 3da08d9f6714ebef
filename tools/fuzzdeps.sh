#!/bin/sh
# `make fuzz` needs clang with libFuzzer: install it when we are root,
# otherwise name the packages in one clear error.
set -e
probe() {
	command -v clang >/dev/null 2>&1 || return 1
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' |
		clang -x c -fsanitize=fuzzer,address - -o /dev/null >/dev/null 2>&1
}
probe && exit 0
need="clang libclang-rt-dev"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "hugemm: installing $need (for make fuzz)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $need >/dev/null
	probe && exit 0
fi
echo "hugemm: make fuzz needs clang with libFuzzer — install it with: sudo apt-get install $need" >&2
exit 1
