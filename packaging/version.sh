#!/bin/sh
# Prints the Debian package version of the checked-out tree:
#   tag v1.2.3 exactly      -> 1.2.3
#   5 commits after v1.2.3  -> 1.2.3+git20261128.5.abc1234
#   no release tag yet      -> 0.0.0~git20261128.abc1234
# with ".dirty" appended when the tree has uncommitted changes. The date is
# the commit's, so the same commit always gives the same version.
set -eu
cd "$(dirname "$0")/.."
if ! sha=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	echo 0.0.0~unknown
	exit 0
fi
date=$(git log -1 --format=%cd --date=format:%Y%m%d HEAD)
dirty=
git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
if desc=$(git describe --tags --match 'v[0-9]*' --long HEAD 2>/dev/null); then
	# v1.2.3-5-gabc1234
	tag=${desc%-*-g*}
	ahead=${desc#"$tag"-}
	ahead=${ahead%%-*}
	# A pre-release tag (v1.2.3-rc1) must sort before the release: 1.2.3~rc1.
	upstream=$(printf %s "${tag#v}" | tr - "~")
	if [ "$ahead" = 0 ]; then
		echo "$upstream$dirty"
	else
		echo "$upstream+git$date.$ahead.$sha$dirty"
	fi
else
	echo "0.0.0~git$date.$sha$dirty"
fi
