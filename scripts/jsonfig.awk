# Helpers for the JSON the benchmarks write (bench/util.h: bench_json): the
# header fields on the first line, then one figure a line. Not a general
# JSON parser: it reads that layout only.

# The string value of "key" on this line, unescaped; "" if absent or null.
function jstr(line, key,    i, s, c, out) {
	i = index(line, "\"" key "\": \"")
	if (!i)
		return ""
	s = substr(line, i + length(key) + 5)
	out = ""
	while (length(s)) {
		c = substr(s, 1, 1)
		if (c == "\\") {
			out = out substr(s, 2, 1)
			s = substr(s, 3)
			continue
		}
		if (c == "\"")
			break
		out = out c
		s = substr(s, 2)
	}
	return out
}

# The literal value of "key" (a number, true, false); "" if absent or null.
function jlit(line, key,    i, s) {
	i = index(line, "\"" key "\": ")
	if (!i)
		return ""
	s = substr(line, i + length(key) + 4)
	sub(/[,}].*/, "", s)
	return s == "null" ? "" : s
}

function is_figure(line) {
	return line ~ /^\{"(program|name)": / && index(line, "\"value\": ")
}
