#!/bin/sh
# check_arm64_words.sh verifies every hand-encoded instruction in the arm64
# assembly: each `WORD $0x…` line must carry the instruction's mnemonic in
# its comment (`// uadalp v16.8h, v24.16b` or `/* … */`), and assembling that
# mnemonic with binutils must give exactly the word. Go's assembler has no
# mnemonic for these instructions, so this is how a typo in an encoding is
# caught without ARM hardware.
#
# Usage: scripts/check_arm64_words.sh [file.s …]   (default: kernels/*_arm64.s fp/*_arm64.s)
# Needs aarch64-linux-gnu-as and -objdump (apt-get install binutils-aarch64-linux-gnu).
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- kernels/*_arm64.s fp/*_arm64.s
for tool in aarch64-linux-gnu-as aarch64-linux-gnu-objdump; do
	command -v "$tool" >/dev/null || { echo "check_arm64_words: $tool not found (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One line per WORD: file:line<TAB>hex word<TAB>mnemonic.
for f in "$@"; do
	awk -v file="$f" '
	/WORD[ \t]+\$0x[0-9a-fA-F]+/ {
		match($0, /\$0x[0-9a-fA-F]+/); word = tolower(substr($0, RSTART + 3, RLENGTH - 3))
		rest = substr($0, RSTART + RLENGTH)
		if (match(rest, /\/\*[^*]*\*\//)) mn = substr(rest, RSTART + 2, RLENGTH - 4)
		else if (match(rest, /\/\/.*/)) mn = substr(rest, RSTART + 2)
		else mn = ""
		gsub(/^[ \t]+|[ \t\\]+$/, "", mn)
		printf "%s:%d\t%s\t%s\n", file, FNR, word, mn
	}' "$f"
done >"$tmp/words"

status=0
count=0
while IFS="$(printf '\t')" read -r where word mn; do
	count=$((count + 1))
	if [ -z "$mn" ]; then
		echo "$where: WORD \$0x$word has no mnemonic comment" >&2; status=1; continue
	fi
	printf '%s\n' "$mn" >"$tmp/one.s"
	if ! aarch64-linux-gnu-as "$tmp/one.s" -o "$tmp/one.o" 2>"$tmp/err"; then
		echo "$where: binutils cannot assemble \"$mn\": $(cat "$tmp/err")" >&2; status=1; continue
	fi
	got=$(aarch64-linux-gnu-objdump -d "$tmp/one.o" | awk '/^ *0:/ {print $2}')
	if [ "$got" != "$(printf %08x "0x$word")" ]; then
		echo "$where: WORD \$0x$word but \"$mn\" assembles to 0x$got" >&2; status=1
	fi
done <"$tmp/words"
[ "$count" -gt 0 ] || { echo "check_arm64_words: no WORD lines found in $*" >&2; exit 1; }
[ $status -eq 0 ] && echo "check_arm64_words: $count encodings match binutils"
exit $status
