#!/usr/bin/env bash
# Runs every fuzz target for a while (default 20s each) and copies new interesting inputs into the committed
# corpus (testdata/fuzz), so `go test` replays them from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
cache=$(go env GOCACHE)/fuzz/github.com/sinewmesh/sinew
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "== $dir $target ($time)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$dir"
    src="$cache/${dir#./}/$target"
    if [ -d "$src" ]; then
      mkdir -p "$dir/testdata/fuzz/$target"
      ls "$src" | head -50 | while read -r c; do cp -n "$src/$c" "$dir/testdata/fuzz/$target/"; done
    fi
  done
done
