#!/usr/bin/env bash
# Print the path of the pinned inference engine (models/engine/engine.lock):
# taken from the cache ($CHRYSALIS_ENGINE_CACHE, default
# ~/.cache/chrysalis/engine) when present, else built from the Go module
# proxy (several minutes on a fresh machine) and checked against the pinned
# SHA-256. The build log goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
chrysalis=${CHRYSALIS:-bin/chrysalis}
[ -x "$chrysalis" ] || go build -o "$chrysalis" ./host/cmd/chrysalis
"$chrysalis" engine build | awk '{print > "/dev/stderr"} $1 == "path" {print $2}'
