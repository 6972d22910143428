# bnnd — see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run run-mnist test cross bench clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/bnnd ./cmd/bnnd

# The main job on the embedded default: the daemon learns on a simulated
# MPU-6050 (the real driver on an emulated I²C chip, moved by the synthetic
# activities). For the first three minutes the simulation labels what it
# does through the label path, as a person would; then the daemon only
# predicts. The embedded MQTT broker listens on 127.0.0.1:1883; watch with
# mosquitto_sub -u bnnd -P "$(sed -n 's/^password=//p' var/state/mqtt-credentials)" -t 'bnnd/#' -v
# (the broker's login is created there on the first run). Checkpoints go to
# var/state; Ctrl-C stops it cleanly and the next 'make run' resumes.
# 'make run-mnist' streams MNIST instead.
run: build
	./bin/bnnd run --source 'mpu6050:sim,teach=3m,window=64,hop=16' --step-every 2 --state-dir var/state

run-mnist: build
	./bin/bnnd run --source 'mnist:,split=train,loop=1' --state-dir var/state-mnist

test:
	scripts/test.sh

cross:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64         $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-arm64 ./cmd/bnnd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7   $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-armv7 ./cmd/bnnd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6   $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-armv6 ./cmd/bnnd

# Kernel speed, one thread, side by side with the C reference (bench/cref,
# gcc -O3 -march=native): the ratio column is C time / our time.
bench: build
	gcc -O3 -march=native -Wall -o bin/cref bench/cref/cref.c
	./bin/bnnd bench --cref --cref-bin bin/cref

clean:
	rm -rf bin dist

# ---- packaging (packaging/, systemd/) ----
# Debian packages for arm64 and armhf into dist/. The armhf binary is built
# for ARMv6 (GOARM=6) so that a Raspberry Pi Zero/1 runs it; static, no cgo.
# nfpm runs through `go run` so it stays out of go.mod.
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# Computed on first use only, and once: other targets never run git for it.
DEB_VERSION ?= $(eval DEB_VERSION := $(shell packaging/version.sh))$(DEB_VERSION)
DEB_EPOCH   ?= $(eval DEB_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s))$(DEB_EPOCH)

.PHONY: deb install

deb:
	@test -f configs/bnnd.yaml || { echo "make deb: configs/bnnd.yaml is missing (it becomes /etc/bnnd/bnnd.yaml)" >&2; exit 1; }
	mkdir -p dist/deb/arm64 dist/deb/armhf
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64       $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/deb/arm64/bnnd ./cmd/bnnd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/deb/armhf/bnnd ./cmd/bnnd
	rm -f dist/bnnd_$(DEB_VERSION)_arm64.deb dist/bnnd_$(DEB_VERSION)_armhf.deb
	set -e; for arch in arm64 armhf; do \
		BNND_DEB_ARCH=$$arch BNND_DEB_VERSION='$(DEB_VERSION)' BNND_DEB_BINARY=dist/deb/$$arch/bnnd \
		SOURCE_DATE_EPOCH='$(DEB_EPOCH)' \
		$(NFPM) pkg --packager deb --config packaging/nfpm.yaml --target dist/bnnd_$(DEB_VERSION)_$$arch.deb; \
	done
	scripts/check-deb.sh dist/bnnd_$(DEB_VERSION)_arm64.deb dist/bnnd_$(DEB_VERSION)_armhf.deb

# Manual install of the host build (as root, or into DESTDIR for staging):
# binary, unit (paths rewritten for PREFIX/SYSCONFDIR), and the example
# configuration unless one exists. As root on the live system it also
# creates the bnnd user and reloads systemd, like the package does.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

install: build
	install -D -m 0755 bin/bnnd '$(DESTDIR)$(BINDIR)/bnnd'
	install -d -m 0755 '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(SYSCONFDIR)/bnnd'
	sed -e 's#/usr/bin/bnnd#$(BINDIR)/bnnd#g' -e 's#/etc/bnnd/#$(SYSCONFDIR)/bnnd/#g' \
		systemd/bnnd.service > '$(DESTDIR)$(UNITDIR)/bnnd.service'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/bnnd.service'
	test -e '$(DESTDIR)$(SYSCONFDIR)/bnnd/bnnd.yaml' || \
		install -m 0640 configs/bnnd.yaml '$(DESTDIR)$(SYSCONFDIR)/bnnd/bnnd.yaml'
	@if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ]; then \
		getent group i2c >/dev/null || addgroup --quiet --system i2c; \
		getent passwd bnnd >/dev/null || adduser --quiet --system --group \
			--home /var/lib/bnnd --no-create-home --gecos 'bnnd training daemon' bnnd; \
		adduser --quiet bnnd i2c; \
		chgrp bnnd '$(SYSCONFDIR)/bnnd/bnnd.yaml'; \
		install -d -o bnnd -g bnnd -m 0700 /var/lib/bnnd; \
		'$(BINDIR)/bnnd' mqtt-credentials -state-dir /var/lib/bnnd -owner bnnd:bnnd; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo 'installed; start it with: systemctl enable --now bnnd'; \
	else \
		echo 'staged; on the target, as root:'; \
		echo '  getent group i2c || addgroup --system i2c'; \
		echo '  adduser --system --group --home /var/lib/bnnd --no-create-home bnnd; adduser bnnd i2c'; \
		echo '  chgrp bnnd $(SYSCONFDIR)/bnnd/bnnd.yaml; install -d -o bnnd -g bnnd -m 0700 /var/lib/bnnd'; \
		echo '  $(BINDIR)/bnnd mqtt-credentials -state-dir /var/lib/bnnd -owner bnnd:bnnd'; \
		echo '  systemctl daemon-reload; systemctl enable --now bnnd'; \
	fi

# The comparison table of issue 4: trains every model with each momentum
# encoding and writes docs/results.md and docs/results.svg (cached runs in
# docs/results.json are reused; pass GENFLAGS=-reuse=false to redo them).
.PHONY: paper-table
# docs/gen is a module of its own (the plotting library stays out of
# bnnd's go.mod); it is built there and run from here, where its paths are.
paper-table: build
	cd docs/gen && $(GO) build -o ../../bin/paper-table .
	./bin/paper-table -bnnd bin/bnnd $(GENFLAGS)
