#!/usr/bin/env bash
# gofmt, go vet and staticcheck (pinned) over the whole module.
set -euo pipefail
cd "$(dirname "$0")/.."
staticcheck_version=v0.8.2

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "lint: gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
bin=$(go env GOPATH)/bin/staticcheck-$staticcheck_version
if [ ! -x "$bin" ]; then
  tmp=$(mktemp -d)
  GOBIN=$tmp go install honnef.co/go/tools/cmd/staticcheck@$staticcheck_version
  mkdir -p "$(dirname "$bin")"
  mv "$tmp/staticcheck" "$bin"
  rm -rf "$tmp"
fi
"$bin" ./...
echo "lint: ok"
