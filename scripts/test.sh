#!/usr/bin/env bash
# The project's whole test suite: vet, race tests on the host, then the same
# tests cross-compiled for arm64 and armv7 and run under qemu user emulation.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/need.sh qemu-aarch64:qemu-user qemu-arm:qemu-user gcc:gcc systemd-analyze:systemd mosquitto:mosquitto mosquitto_passwd:mosquitto mosquitto_pub:mosquitto-clients

echo "== go vet" >&2
go vet ./...
go vet -tags purego ./...
GOARCH=arm64 go vet ./...
GOARCH=arm GOARM=7 go vet ./...
# docs/gen is its own module, which ./... does not reach.
(cd docs/gen && go vet . && go build -o /dev/null .)

echo "== go test -race (host)" >&2
go test -race -timeout 20m ./...

# Under the race detector the exhaustive float32 checks sample every 31st
# bit pattern; here they cover all 2^32 of them.
echo "== exhaustive fp16/bf16 encode checks (all 2^32 float32 patterns)" >&2
go test -count=1 -run 'AllFloat32' ./fp

echo "== go test -tags purego (host, no assembly)" >&2
go test -short -tags purego -timeout 10m ./...

echo "== go test (arm64 under qemu-aarch64)" >&2
GOARCH=arm64 go test -short -exec qemu-aarch64 -timeout 20m ./...

echo "== go test (armv7 under qemu-arm)" >&2
GOARCH=arm GOARM=7 go test -short -exec qemu-arm -timeout 20m ./...
