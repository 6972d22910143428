#!/usr/bin/env bash
# check-deb.sh DEB... — check the bnnd packages `make deb` built: control
# fields, conffiles, maintainer scripts, file list with modes and owners, the
# shipped unit and config byte for byte, and the binary itself (architecture,
# static, GOARM, and that it runs: arm64 under qemu-aarch64, armhf under
# qemu-arm emulating the Pi Zero's ARM1176 core).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/need.sh dpkg-deb:dpkg readelf:binutils qemu-aarch64:qemu-user qemu-arm:qemu-user

[ $# -gt 0 ] || { echo "usage: $0 DEB..." >&2; exit 2; }

failures=0
fail() {
	echo "check-deb: $deb: $*" >&2
	failures=$((failures + 1))
}

# want_entry LISTING MODE OWNER PATH: PATH is in `dpkg-deb -c` LISTING with MODE and OWNER.
want_entry() {
	local listing=$1 mode=$2 owner=$3 path=$4 line
	line=$(awk -v p="$path" '$6 == p' <<<"$listing")
	if [ -z "$line" ]; then
		fail "missing $path"
		return
	fi
	read -r got_mode got_owner _ <<<"$line"
	[ "$got_mode" = "$mode" ] || fail "$path has mode $got_mode, want $mode"
	[ "$got_owner" = "$owner" ] || fail "$path is owned by $got_owner, want $owner"
}

# run_script DIR SCRIPT ARGS...: runs a maintainer script with every command
# it may change the system with replaced by a stub that logs its arguments;
# getent and dpkg-statoverride --list answer "exists" when $EXISTS is 1.
# Prints the log, then the script's output.
run_script() {
	local dir=$1 script=$2 stubs
	shift 2
	stubs=$(mktemp -d)
	for cmd in getent addgroup adduser dpkg-statoverride modprobe udevadm systemctl install bnnd; do
		cat >"$stubs/$cmd" <<-STUB
			#!/bin/sh
			echo "$cmd \$*" >>"$stubs/log"
			case "$cmd \$1" in
			"getent "* | "dpkg-statoverride --list") [ "\$EXISTS" = 1 ] && exit 0; exit 2 ;;
			esac
			exit 0
		STUB
		chmod +x "$stubs/$cmd"
	done
	local out
	out=$(env -i PATH="$stubs:/usr/bin:/bin" EXISTS="${EXISTS:-0}" sh "$dir/$script" "$@" 2>&1) ||
		fail "$script $* exited with status $?: $out"
	cat "$stubs/log" 2>/dev/null
	echo "$out"
	rm -rf "$stubs"
}

# check_maintainer_scripts DIR: what the scripts do on first install, on
# upgrade and on removal (with stubbed system commands).
check_maintainer_scripts() {
	local dir=$1 log
	log=$(EXISTS=0 run_script "$dir" postinst configure "")
	for want in "addgroup --quiet --system i2c" \
		"adduser --quiet --system --group --home /var/lib/bnnd --no-create-home --gecos bnnd training daemon bnnd" \
		"adduser --quiet bnnd i2c" \
		"dpkg-statoverride --quiet --update --add root bnnd 0640 /etc/bnnd/bnnd.yaml" \
		"install -d -o bnnd -g bnnd -m 0700 /var/lib/bnnd" \
		"bnnd mqtt-credentials -state-dir /var/lib/bnnd -owner bnnd:bnnd" \
		"/var/lib/bnnd/mqtt-credentials" \
		"systemctl enable --now bnnd"; do
		grep -qxF -- "$want" <<<"$log" || grep -qF -- "  $want" <<<"$log" ||
			fail "postinst configure (first install) did not run or print '$want'; it did:"$'\n'"$log"
	done
	log=$(EXISTS=1 run_script "$dir" postinst configure 0.0.0~old)
	if grep -qE '^(addgroup|adduser --quiet --system|dpkg-statoverride --quiet --update)|enable --now' <<<"$log"; then
		fail "postinst configure (upgrade) recreated the user or statoverride, or printed the install hint:"$'\n'"$log"
	fi
	grep -qxF "adduser --quiet bnnd i2c" <<<"$log" || fail "postinst configure (upgrade) does not ensure bnnd is in group i2c"
	grep -qxF "bnnd mqtt-credentials -state-dir /var/lib/bnnd -owner bnnd:bnnd" <<<"$log" ||
		fail "postinst configure (upgrade) does not ensure the MQTT credentials exist (an older version made none)"
	log=$(run_script "$dir" prerm remove)
	grep -qxF "systemctl disable --quiet bnnd.service" <<<"$log" || fail "prerm remove does not disable the unit:"$'\n'"$log"
	log=$(run_script "$dir" prerm upgrade 0.0.0~new)
	grep -q systemctl <<<"$log" && fail "prerm upgrade touches the service:"$'\n'"$log"
	if sh "$dir/postinst" bogus-action >/dev/null 2>&1; then
		fail "postinst accepts an unknown action"
	fi
}

for deb in "$@"; do
	[ -f "$deb" ] || { fail "no such file"; continue; }
	case "$deb" in
	*_arm64.deb) arch=arm64 machine=AArch64 goarch=arm64 qemu=(qemu-aarch64) ;;
	*_armhf.deb) arch=armhf machine=ARM goarch=arm qemu=(qemu-arm -cpu arm1176) ;;
	*) fail "name does not end in _arm64.deb or _armhf.deb"; continue ;;
	esac

	# Control fields.
	field() { dpkg-deb -f "$deb" "$1"; }
	[ "$(field Package)" = bnnd ] || fail "Package is '$(field Package)', want bnnd"
	[ "$(field Architecture)" = "$arch" ] || fail "Architecture is '$(field Architecture)', want $arch"
	version=$(field Version)
	[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || fail "Version '$version' is not a valid Debian upstream version"
	[[ "$(basename "$deb")" == "bnnd_${version}_$arch.deb" ]] || fail "file name does not match version $version"
	grep -qw adduser <<<"$(field Depends)" || fail "Depends '$(field Depends)' lacks adduser (postinst uses it)"
	[ -n "$(field Maintainer)" ] || fail "no Maintainer"
	[ -n "$(field Description)" ] || fail "no Description"

	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	dpkg-deb -e "$deb" "$work/DEBIAN"
	dpkg-deb -x "$deb" "$work/root"

	# The config is a conffile (kept across upgrades), and the only one.
	conffiles=$(cat "$work/DEBIAN/conffiles" 2>/dev/null || true)
	[ "$conffiles" = /etc/bnnd/bnnd.yaml ] || fail "conffiles is '$conffiles', want /etc/bnnd/bnnd.yaml"

	# Maintainer scripts: the ones in packaging/scripts, executable, valid sh.
	for script in postinst prerm postrm; do
		file=$work/DEBIAN/$script
		if [ ! -f "$file" ]; then
			fail "no $script"
			continue
		fi
		[ -x "$file" ] || fail "$script is not executable"
		sh -n "$file" || fail "$script is not valid sh"
		cmp -s "$file" "packaging/scripts/$script" || fail "$script differs from packaging/scripts/$script"
	done
	grep -q 'systemctl stop bnnd.service' "$work/DEBIAN/prerm" || fail "prerm does not stop the service"
	[ ! -e "$work/DEBIAN/preinst" ] || fail "unexpected preinst"
	check_maintainer_scripts "$work/DEBIAN"

	# Files, modes, owners.
	listing=$(dpkg-deb -c "$deb")
	want_entry "$listing" -rwxr-xr-x root/root ./usr/bin/bnnd
	want_entry "$listing" -rw-r--r-- root/root ./lib/systemd/system/bnnd.service
	want_entry "$listing" -rw-r----- root/root ./etc/bnnd/bnnd.yaml
	want_entry "$listing" -rw-r--r-- root/root ./usr/lib/modules-load.d/bnnd.conf
	want_entry "$listing" -rw-r--r-- root/root ./usr/lib/udev/rules.d/60-bnnd-i2c.rules
	want_entry "$listing" -rw-r--r-- root/root ./usr/share/doc/bnnd/README.md
	files=$(awk '$1 !~ /^d/ {print $6}' <<<"$listing" | sort | tr '\n' ' ')
	want="./etc/bnnd/bnnd.yaml ./lib/systemd/system/bnnd.service ./usr/bin/bnnd ./usr/lib/modules-load.d/bnnd.conf ./usr/lib/udev/rules.d/60-bnnd-i2c.rules ./usr/share/doc/bnnd/README.md "
	[ "$files" = "$want" ] || fail "files are: $files; want: $want"

	# Shipped content equals the sources that were tested.
	cmp -s "$work/root/lib/systemd/system/bnnd.service" systemd/bnnd.service || fail "the unit differs from systemd/bnnd.service"
	cmp -s "$work/root/etc/bnnd/bnnd.yaml" configs/bnnd.yaml || fail "the config differs from configs/bnnd.yaml"

	# The binary: right machine, static, built as intended, and it runs.
	bin=$work/root/usr/bin/bnnd
	got_machine=$(readelf -h "$bin" | awk -F: '/Machine:/ {gsub(/^ +/, "", $2); print $2}')
	[ "$got_machine" = "$machine" ] || fail "binary is for '$got_machine', want $machine"
	if readelf -l "$bin" | grep -q INTERP; then
		fail "binary is dynamically linked (needs CGO_ENABLED=0)"
	fi
	buildinfo=$(go version -m "$bin")
	grep -q "build	GOARCH=$goarch\$" <<<"$buildinfo" || fail "binary not built with GOARCH=$goarch"
	grep -q "build	CGO_ENABLED=0\$" <<<"$buildinfo" || fail "binary not built with CGO_ENABLED=0"
	if [ "$arch" = armhf ]; then
		# ARMv6 so that a Raspberry Pi Zero/1 runs it.
		grep -q "build	GOARM=6\$" <<<"$buildinfo" || fail "armhf binary not built with GOARM=6"
	fi
	if out=$("${qemu[@]}" "$bin" version 2>&1); then
		grep -q "$goarch" <<<"$out" || fail "'bnnd version' under ${qemu[*]} does not name $goarch: $out"
	else
		fail "'bnnd version' fails under ${qemu[*]}: $out"
	fi

	rm -rf "$work"
	trap - EXIT
	if [ "$failures" = 0 ]; then
		echo "check-deb: $deb: ok ($arch, version $version, $(stat -c %s "$deb") bytes)"
	fi
done

if [ "$failures" != 0 ]; then
	echo "check-deb: $failures problem(s)" >&2
	exit 1
fi
