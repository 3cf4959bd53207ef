#!/usr/bin/env bash
# A/B reproducibility check: build the release twice under deliberately
# different conditions and require byte-identical outputs.
#
#   A: root, snapshot of the checkout at $WORK/a/src, TZ=UTC, umask 022,
#      LC_ALL=C, the machine's normal Go build and module caches.
#   B: the unprivileged user chrysalis-repro (created if missing), snapshot
#      at a different, deeper path, TZ=Pacific/Kiritimati (UTC+14),
#      umask 077, LC_ALL=C.UTF-8, every source file's mtime set to
#      2001-02-03 04:05, its own empty GOCACHE/GOPATH/GOMODCACHE/TMPDIR/HOME
#      (modules come from a read-only file:// copy of A's module download
#      cache, then the normal GOPROXY), another hostname (when unshare can
#      make a UTS namespace), and faketime when it is installed.
#   Both sides build their own chrysalis binary from their snapshot and run
#   `chrysalis build`. They share the .deb download cache: it is
#   content-addressed and every use re-checks size and sha256, so sharing it
#   cannot hide a difference.
#
# About the clock: Go programs (go, compile, link, chrysalis) read time
# through the vDSO, not through libc, so faketime's LD_PRELOAD does not
# reach them; it only changes the clock of libc tools (git, cp, touch).
# The builds do run at different wall-clock times, with different TZ and
# source mtimes, which is what would leak a timestamp.
#
# Both sides build from snapshots (`git ls-files --cached --others
# --exclude-standard` plus .git, minus the bin/ and release/ build outputs),
# taken once, so edits made to the checkout while this runs cannot make A
# and B differ. .git is copied so both record the same source_commit and
# source_dirty in release.json.
#
# Environment: REPRO_WORK (scratch dir, default a fresh /tmp dir, removed
# unless REPRO_KEEP=1), REPRO_DEB_CACHE (shared download cache, default
# /var/tmp/chrysalis-repro/debs, seeded from the caller's default cache),
# REPRO_USER (default chrysalis-repro), CHRYSALIS_DEBIAN_MIRROR.
# Exit status: 0 identical, 1 different, 2 setup or build failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
user=${REPRO_USER:-chrysalis-repro}
deb_cache=${REPRO_DEB_CACHE:-/var/tmp/chrysalis-repro/debs}
files=(OVMF.fd cmdline initrd release.json vmlinuz SHA256SUMS)

die() { echo "repro: $*" >&2; exit 2; }
log() { echo "repro: $*" >&2; }

command -v go >/dev/null || die "go is not on PATH"
command -v git >/dev/null || die "git is not on PATH"
gobin=$(dirname "$(command -v go)")

work=${REPRO_WORK:-$(mktemp -d /tmp/chrysalis-repro.XXXXXX)}
mkdir -p "$work"
chmod 755 "$work"
cleanup() {
  if [ "${REPRO_KEEP:-0}" = 1 ]; then
    log "kept $work"
  else
    # B's module cache is read-only by design (go marks it so).
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# ---- snapshot ---------------------------------------------------------
snap=$work/snapshot
mkdir -p "$snap"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
  grep -zv -e '^bin/' -e '^release/' |
  (cd "$repo" && xargs -0 cp --parents -a -t "$snap") || die "cannot snapshot $repo"
cp -a "$repo/.git" "$snap/.git"
[ -f "$snap/go.mod" ] || die "snapshot of $repo has no go.mod"

a_src=$work/a/src
b_src=$work/b/some/much/deeper/checkout/path/chrysalis
mkdir -p "$work/a" "$(dirname "$b_src")"
cp -a "$snap" "$a_src"
cp -a "$snap" "$b_src"
find "$b_src" -path "$b_src/.git" -prune -o -exec touch -h -d '2001-02-03 04:05' {} +

# ---- shared download cache ---------------------------------------------
mkdir -p "$deb_cache"
chmod 755 "$deb_cache" "$(dirname "$deb_cache")" 2>/dev/null || true
# Seed from the caller's own cache (safe: entries are checked on use).
own_cache=${XDG_CACHE_HOME:-$HOME/.cache}/chrysalis/debs
if [ -d "$own_cache" ]; then
  cp -n "$own_cache"/*.deb "$deb_cache"/ 2>/dev/null || true
fi
chmod 644 "$deb_cache"/*.deb 2>/dev/null || true

mirror_flag=()
[ -n "${CHRYSALIS_DEBIAN_MIRROR:-}" ] && mirror_flag=(--mirror "$CHRYSALIS_DEBIAN_MIRROR")

# ---- A ------------------------------------------------------------------
log "A: root, $a_src, TZ=UTC, umask 022, LC_ALL=C"
start=$(date +%s)
(
  cd "$a_src"
  umask 022
  export TZ=UTC LC_ALL=C GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
  go build -trimpath -o "$work/a/chrysalis" ./host/cmd/chrysalis
  "$work/a/chrysalis" build --out "$work/a/out/release" --cache "$deb_cache" "${mirror_flag[@]}"
) >"$work/a/build.log" 2>&1 || { cat "$work/a/build.log" >&2; die "build A failed"; }
log "A: done in $(( $(date +%s) - start ))s"

# ---- B ------------------------------------------------------------------
b_home=$work/b/home
mkdir -p "$b_home" "$work/b/out" "$work/b/tmp"

# A read-only GOPROXY made from A's module download cache (hard links when
# possible), so B resolves modules without reading A's module cache.
proxy=$work/goproxy
moddl=$(go env GOMODCACHE)/cache/download
if [ -d "$moddl" ]; then
  cp -al "$moddl" "$proxy" 2>/dev/null || cp -a "$moddl" "$proxy"
else
  mkdir -p "$proxy"
fi
chmod -R a+rX "$proxy" 2>/dev/null || true
goproxy="file://$proxy,$(go env GOPROXY)"

cat >"$work/b/run.sh" <<EOF
set -eu
umask 077
cd "$b_src"
go build -trimpath -o "$work/b/chrysalis" ./host/cmd/chrysalis
exec "$work/b/chrysalis" build --out "$work/b/out/release" --cache "$deb_cache" ${mirror_flag[*]:+${mirror_flag[*]}}
EOF

benv=(env -i
  PATH="$gobin:/usr/local/bin:/usr/bin:/bin"
  HOME="$b_home" USER="$user" LOGNAME="$user"
  TZ=Pacific/Kiritimati LC_ALL=C.UTF-8 LANG=C.UTF-8
  TMPDIR="$work/b/tmp" XDG_CACHE_HOME="$b_home/.cache"
  GOCACHE="$work/b/gocache" GOPATH="$work/b/gopath" GOMODCACHE="$work/b/gomodcache"
  GOPROXY="$goproxy" GOFLAGS=-buildvcs=false GOTOOLCHAIN=local)
[ -n "${HTTP_PROXY:-}" ] && benv+=(HTTP_PROXY="$HTTP_PROXY")
[ -n "${HTTPS_PROXY:-}" ] && benv+=(HTTPS_PROXY="$HTTPS_PROXY")

if [ "$(id -u)" = 0 ]; then
  if ! id "$user" >/dev/null 2>&1; then
    log "creating user $user"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  fi
  chown -R "$user:" "$work/b"
  # B needs to create nothing in the shared cache when A filled it, but
  # must be able to read it.
  if command -v setpriv >/dev/null; then
    switch=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --)
  else
    switch=(runuser -u "$user" --)
  fi
else
  log "not root: B runs as $(id -un) (everything else still differs)"
  switch=()
fi

cmd=("${switch[@]}" "${benv[@]}")
if command -v faketime >/dev/null; then
  cmd+=(faketime '2038-01-19 03:14:00')
  log "B: under faketime (affects libc tools only, see the header)"
fi
cmd+=(sh "$work/b/run.sh")
if [ "$(id -u)" = 0 ] && unshare --uts true 2>/dev/null; then
  cmd=(unshare --uts -- sh -c 'hostname chrysalis-repro-b && exec "$@"' sh "${cmd[@]}")
  log "B: own UTS namespace, hostname chrysalis-repro-b"
fi

log "B: $user, $b_src, TZ=Pacific/Kiritimati, umask 077, LC_ALL=C.UTF-8, mtimes 2001-02-03, fresh Go caches"
start=$(date +%s)
"${cmd[@]}" >"$work/b/build.log" 2>&1 || { cat "$work/b/build.log" >&2; die "build B failed"; }
log "B: done in $(( $(date +%s) - start ))s"

# ---- compare ------------------------------------------------------------
ra=$work/a/out/release rb=$work/b/out/release
status=0
for f in "${files[@]}"; do
  if cmp -s "$ra/$f" "$rb/$f"; then
    echo "same      $f"
  else
    echo "DIFFERENT $f"
    status=1
  fi
done
if ! diff -u "$ra/SHA256SUMS" "$rb/SHA256SUMS"; then
  status=1
fi
echo
echo "SHA256SUMS (A):"
cat "$ra/SHA256SUMS"
if [ "$status" != 0 ]; then
  echo
  echo "release.json diff:"
  diff -u "$ra/release.json" "$rb/release.json" || true
  if command -v cpio >/dev/null && ! cmp -s "$ra/initrd" "$rb/initrd"; then
    echo "initrd listing diff:"
    diff -u <(cpio -itv --quiet <"$ra/initrd") <(cpio -itv --quiet <"$rb/initrd") || true
  fi
  echo "repro: A and B differ" >&2
  exit 1
fi
echo "repro: A and B are byte-identical"
