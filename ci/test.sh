#!/usr/bin/env bash
# Everything `make test` runs: lint; a release build whose firmware and
# kernel the measurement tests check against their pinned values; the
# registry contract recompiled and compared (ci/tolk-check.sh); all Go
# tests (unit, fuzz seed corpora, the QEMU end-to-end boot); then the A/B
# reproducibility check.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/lint.sh
ci/tolk-check.sh
make -s release RELEASE=release
export CHRYSALIS_TEST_OVMF=$PWD/release/OVMF.fd CHRYSALIS_TEST_KERNEL=$PWD/release/vmlinuz
go test -count=1 -timeout 45m ./...
ci/repro.sh
