#!/usr/bin/env bash
# Everything `make test` runs: lint, all Go tests (unit, fuzz seeds, the
# QEMU end-to-end boot), then the A/B reproducibility check.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/lint.sh
go test -count=1 -timeout 45m ./...
ci/repro.sh
