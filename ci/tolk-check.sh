#!/usr/bin/env bash
# Recompiles the registry contract (measure/registry/contract/registry.tolk)
# with the Tolk compiler pinned in its package-lock.json (@ton/tolk-js,
# installed with `npm ci`) and fails when the output differs from the
# checked-in registry.code.boc / registry.code.hash. Needs node >= 18 and
# npm; `npm ci` uses the npm cache when it holds the pinned tarballs.
set -euo pipefail
cd "$(dirname "$0")/../measure/registry/contract"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "tolk-check: $tool not found (install Node.js >= 18)" >&2; exit 1; }
done

npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
node compile.mjs "$out" >/dev/null

status=0
for f in registry.code.boc registry.code.hash; do
  if [ ! -f "$f" ]; then
    echo "tolk-check: measure/registry/contract/$f is not checked in" >&2
    status=1
  elif ! cmp -s "$f" "$out/$f"; then
    echo "tolk-check: measure/registry/contract/$f differs from what registry.tolk compiles to:" >&2
    echo "  checked in: $(sha256sum <"$f" | cut -d' ' -f1)" >&2
    echo "  compiled:   $(sha256sum <"$out/$f" | cut -d' ' -f1)" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "tolk-check: run 'node compile.mjs' in measure/registry/contract and commit the output (then go test ./measure/registry/)" >&2
  exit 1
fi
echo "tolk-check: ok ($(cut -d' ' -f2- registry.code.hash | tr -d '\n'), code hash $(cut -d' ' -f1 registry.code.hash))"
