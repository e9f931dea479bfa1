#!/usr/bin/env bash
# Runs Ashlar's interop suite (test/interop) or one part of it:
#   scripts/interop.sh cli|tempest|peers|cluster|all [extra go test flags]
# e.g. scripts/interop.sh tempest -run 'TestTempest/image'   (a narrower -run wins)
# Env: ASHLAR_INTEROP_KEEP=1 keeps logs/state even on success;
#      ASHLAR_TEMPEST_LISTS=image-core (default image-core,volume-core);
#      ASHLAR_TEMPEST_CONCURRENCY=N (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
shift || true
case $part in
  cli) run='TestCLI' ;;
  tempest) run='TestTempest' ;;
  peers) run='TestPeers' ;;
  cluster) run='TestCluster|TestNodeDeath' ;;
  all) run='TestCLI|TestTempest|TestPeers|TestCluster|TestNodeDeath' ;;
  *) sed -n 2,8p "$0" >&2; exit 2 ;;
esac
export ASHLAR_INTEROP=1
exec go test ./test/interop -count=1 -timeout 60m -v -run "$run" "$@"
