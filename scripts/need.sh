#!/usr/bin/env bash
# need.sh CMD:PACKAGE ... — make sure each command exists. Where one is
# missing and we are root on Debian, install its package with apt-get;
# otherwise stop with a message naming the package to install.
set -euo pipefail
missing_pkgs=()
for pair in "$@"; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || missing_pkgs+=("$pkg")
done
[ ${#missing_pkgs[@]} -eq 0 ] && exit 0
# de-duplicate
mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing: ${missing_pkgs[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
	exit 0
fi
echo "missing tools; install these Debian packages: ${missing_pkgs[*]}" >&2
exit 1
