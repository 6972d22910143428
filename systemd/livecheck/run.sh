#!/usr/bin/env bash
# run.sh — a live check of bnnd.service under a real systemd (manual; needs
# root, systemd >= 252, util-linux unshare, python3): runs the livecheck
# stand-in with the unit's whole sandbox in a systemd user manager started in
# a private mount namespace, so it also works where systemd is not PID 1
# (containers, CI). Checks that the Go runtime runs under the sandbox, that
# READY and progress-fed WATCHDOG=1 keep it up, that a stalled loop is killed
# by the watchdog with a goroutine dump, and that it is restarted.
# Not covered here: User=/SupplementaryGroups= and DeviceAllow= (a user
# manager cannot switch users nor own a device cgroup).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (the user manager sets up mount namespaces)" >&2; exit 2; }
scripts/need.sh unshare:util-linux python3:python3

# Not under /tmp or /var/tmp: PrivateTmp= would hide it from the service.
work=$(mktemp -d /var/lib/bnnd-livecheck.XXXXXX)
cgroups_before=$(ls -d /sys/fs/cgroup/*/app.slice /sys/fs/cgroup/app.slice 2>/dev/null || true)
cleanup() {
	rm -rf "$work"
	# A user manager outside a login session leaves its app.slice behind.
	for d in /sys/fs/cgroup/*/app.slice /sys/fs/cgroup/app.slice; do
		[ -d "$d" ] && ! grep -qxF "$d" <<<"$cgroups_before" && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/runtime" "$work/config/systemd/user" "$work/state"
chmod 0700 "$work/runtime"
CGO_ENABLED=0 go build -o "$work/bin/livecheck" ./systemd/livecheck
# The shipped unit with the stand-in, a 2s watchdog, no user switch, and the
# output in a file (no journal here).
sed -e "s#^ExecStart=/usr/bin/bnnd .*#ExecStart=$work/bin/livecheck#" \
	-e '/^User=/d; /^Group=/d; /^SupplementaryGroups=/d; /^WorkingDirectory=/d' \
	-e 's/^WatchdogSec=.*/WatchdogSec=2s/; s/^RestartSec=.*/RestartSec=1s/' \
	-e "s#^\[Service\]#[Service]\nEnvironment=STALL_AFTER=3s\nStandardOutput=append:$work/out.log\nStandardError=append:$work/out.log#" \
	systemd/bnnd.service >"$work/config/systemd/user/bnnd.service"

# In a private mount namespace: a tmpfs /run/systemd that says "booted with
# systemd", with the inaccessible nodes PID 1 would have made.
cat >"$work/boot.sh" <<'BOOT'
set -e
mount -t tmpfs tmpfs /run/systemd 2>/dev/null || { mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }
mkdir /run/systemd/system
i=/run/systemd/inaccessible
mkdir -p $i && touch $i/reg && mkdir $i/dir && mknod $i/chr c 0 0 && mknod $i/blk b 0 0 && mkfifo $i/fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/run/systemd/inaccessible/sock")'
chmod 0 $i/*
exec timeout -k 5 -s TERM 12 /lib/systemd/systemd --user --unit=bnnd.service
BOOT
XDG_RUNTIME_DIR=$work/runtime XDG_CONFIG_HOME=$work/config XDG_STATE_HOME=$work/state HOME=$work \
	unshare --mount --propagation private sh "$work/boot.sh" >"$work/manager.log" 2>&1 || true

out=$work/out.log
touch "$out"
failures=0
want() {
	local count
	count=$(grep -c -- "$2" "$out" || true)
	if [ "$count" -lt "$1" ]; then
		echo "run.sh: want at least $1 line(s) with '$2', got $count" >&2
		failures=$((failures + 1))
	fi
}
want 7 'livecheck: ok'
want 2 'livecheck: start'                       # started, killed, restarted
want 1 'withholding WATCHDOG=1'                 # the stall was noticed
want 1 'SIGQUIT: quit'                          # killed by WatchdogSignal, with a dump
want 1 'main.main()'                            # the dump shows the stuck goroutine
if grep -q 'livecheck: FAIL' "$out"; then
	grep 'livecheck: FAIL' "$out" >&2
	failures=$((failures + 1))
fi
if [ "$failures" != 0 ]; then
	echo "--- service output:" >&2
	head -40 "$out" >&2
	echo "--- manager:" >&2
	tail -20 "$work/manager.log" >&2
	exit 1
fi
grep -E 'livecheck: (ok|start|stalling)|withholding' "$out" | head -12
echo "run.sh: ok: sandboxed Go runtime, READY, progress-fed watchdog, watchdog kill with dump, restart"
