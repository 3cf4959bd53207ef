#!/usr/bin/env bash
# Everything `make test` runs: lint; a release build whose firmware and
# kernel the measurement tests check against their pinned values; the
# registry contract recompiled and compared (ci/tolk-check.sh); the pinned
# inference engine built or taken from its cache (ci/engine.sh); all Go
# tests (unit, fuzz seed corpora, the QEMU end-to-end boot); then the A/B
# reproducibility check.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/lint.sh
ci/tolk-check.sh
make -s release RELEASE=release
export CHRYSALIS_TEST_OVMF=$PWD/release/OVMF.fd CHRYSALIS_TEST_KERNEL=$PWD/release/vmlinuz
# The pinned inference engine (models/engine): built from the Go module proxy
# on a fresh machine (about 7-10 min on 2 cores), taken from the cache after.
CHRYSALIS_TEST_ENGINE=$(ci/engine.sh)
export CHRYSALIS_TEST_ENGINE
go test -count=1 -timeout 45m ./...
ci/repro.sh
