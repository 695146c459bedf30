#!/usr/bin/env bash
# Run the whole benchmark harness: the combined cloud scan
# (bench/cloud_run.sh), the snapshot diff (bench/diff_run.sh) and the
# comparison with Prowler and a boto3 script on moto (bench/peers_run.sh).
#
# Usage: bench/all.sh   (from anywhere)
#
# idrift is built once, in release mode, unless SKIP_BUILD=1; each script
# then measures that binary. Every other variable reaches the scripts as
# it is (see each script's header). Each script writes its own
# bench/out/<name>-<UTC time>/results.md. The run stops at the first script
# that fails, with its exit code.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "[bench $(date -u +%H:%M:%S)] building idrift (cargo build --release)" >&2
    (cd "$repo_dir" && cargo build --release)
fi
export SKIP_BUILD=1

scripts=(cloud_run.sh diff_run.sh peers_run.sh)
for script in "${scripts[@]}"; do
    echo "[bench $(date -u +%H:%M:%S)] bash bench/$script" >&2
    bash "$bench_dir/$script"
done
