#!/usr/bin/env bash
# Boots the release in dev mode, verifies one request over RA-TLS with the
# insecure-dev policy, prints the verified claims, then shuts the VM down.
set -euo pipefail
chrysalis=${1:-bin/chrysalis} release=${2:-release} port=${3:-8443}
state=$(mktemp -d -t chrysalis-demo.XXXXXX)
log=$state/launch.out

"$chrysalis" launch --dev --release "$release" --port "$port" --state "$state/vm" >"$log" 2>&1 &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

echo "demo: booting $release under QEMU (TCG, dev mode); console: $state/vm/console.log"
for _ in $(seq 1 600); do
  if grep -q '^endpoint: ' "$log"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: launch failed:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.5
done
endpoint=$(awk '/^endpoint: /{print $2; exit}' "$log")
[ -n "$endpoint" ] || { echo "demo: guest not ready in time:" >&2; cat "$log" >&2; exit 1; }
sed -n '1,/^endpoint: /p' "$log"
echo
"$chrysalis" verify "$endpoint" --policy insecure-dev
echo
echo "demo: the TDX measurements this release will have on a TD of the same shape (no quote in dev mode to compare them with):"
"$chrysalis" measure --release "$release" --shape dev-small --events=false
echo
echo "demo: stopping the VM"
kill -INT "$pid"
wait "$pid"
trap - EXIT
echo "demo: done"
