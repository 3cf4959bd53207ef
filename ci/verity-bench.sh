#!/usr/bin/env bash
# verity-bench.sh: time `veritysetup format` against `chrysalis model verity`
# on the same 1 GiB file (same salt, UUID and block sizes), check that both
# hash devices are byte-identical and print both times and the speed-up
# (issue 6's goal: >= 1.5x on 2 cores).
#
# usage: ci/verity-bench.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
command -v veritysetup >/dev/null || { echo "verity-bench: veritysetup not on PATH (apt-get install cryptsetup-bin)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/verity-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

go build -o "$work/chrysalis" ./host/cmd/chrysalis
# Deterministic, incompressible content: AES-CTR keystream via openssl if
# present, else urandom.
if command -v openssl >/dev/null; then
	head -c $((size_mib << 20)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 >"$work/data.img" 2>/dev/null
else
	head -c $((size_mib << 20)) /dev/urandom >"$work/data.img"
fi
cat "$work/data.img" >/dev/null # both runs read from the page cache

salt=$(printf 'chrysalis verity bench' | sha256sum | cut -d' ' -f1)
uuid=6368722d-7973-8000-8000-62656e636821

# `time -p` gives wall, user and sys seconds; CPU seconds show the work done
# independently of how busy the other cores are.
{ time -p veritysetup format "$work/data.img" "$work/ref.hash" --salt="$salt" --uuid="$uuid" >"$work/ref.out"; } 2>"$work/ref.time"
{ time -p "$work/chrysalis" model verity --data "$work/data.img" --hash-out "$work/ours.hash" --salt "$salt" --uuid "$uuid" >"$work/ours.out"; } 2>"$work/ours.time"

ref_root=$(awk '/^Root hash:/{print $3}' "$work/ref.out")
our_root=$(awk '/^root hash/{print $3}' "$work/ours.out")
[ "$ref_root" = "$our_root" ] || { echo "verity-bench: root hashes differ: veritysetup $ref_root, chrysalis $our_root" >&2; exit 1; }
cmp -s "$work/ref.hash" "$work/ours.hash" || { echo "verity-bench: hash devices differ" >&2; exit 1; }

t() { awk -v k="$2" '$1 == k {print $2}' "$work/$1.time"; }
awk -v vs="$(t ref real)" -v vu="$(t ref user)" -v vy="$(t ref sys)" \
	-v ch="$(t ours real)" -v cu="$(t ours user)" -v cy="$(t ours sys)" \
	-v mib="$size_mib" -v cpus="$(nproc)" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v root="$our_root" 'BEGIN {
	printf "data          %d MiB, %d CPUs (load average %s), root hash %s (identical hash devices)\n", mib, cpus, load, root
	printf "veritysetup   %.2f s wall %7.0f MB/s, %.2f s CPU\n", vs, mib * 1048576 / vs / 1e6, vu + vy
	printf "chrysalis     %.2f s wall %7.0f MB/s, %.2f s CPU\n", ch, mib * 1048576 / ch / 1e6, cu + cy
	printf "speed-up      %.2fx wall (goal >= 1.5x), %.2fx less CPU\n", vs / ch, (vu + vy) / (cu + cy)
}'
