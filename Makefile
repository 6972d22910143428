# bnnd — see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test cross bench clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/bnnd ./cmd/bnnd

# The main job on the embedded default.
run: build
	./bin/bnnd format --compare --at 3e-7

test:
	scripts/test.sh

cross:
	mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64         $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-arm64 ./cmd/bnnd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7   $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-armv7 ./cmd/bnnd
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6   $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bnnd-linux-armv6 ./cmd/bnnd

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf bin dist
