#!/usr/bin/env bash
# Installs what Chrysalis needs on a Debian/Ubuntu x86-64 machine, or names
# precisely what is missing when it cannot install (not root, no apt).
set -euo pipefail

pkgs=(qemu-system-x86 qemu-utils cryptsetup-bin cpio ca-certificates git e2fsprogs)
need_go=go1.26

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v go >/dev/null; then
  echo "deps: Go is missing: install $need_go.x from https://go.dev/dl/ and put it on PATH" >&2
  exit 1
fi
gv=$(go env GOVERSION)
case "$gv" in
  "$need_go"|"$need_go".*) ;;
  *) echo "deps: Go is $gv, Chrysalis needs $need_go.x (the agent binary, and so the image, depend on it)" >&2; exit 1 ;;
esac
command -v qemu-system-x86_64 >/dev/null || { echo "deps: qemu-system-x86_64 not on PATH after install" >&2; exit 1; }
echo "deps: ok ($gv, $(qemu-system-x86_64 --version | head -1))"
