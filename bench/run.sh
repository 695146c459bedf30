#!/usr/bin/env bash
# Benchmark `idrift scan` against the AWS CLI loop a user would write, on one
# moto account of USERS users (one access key each) and ROLES roles.
#
# Usage: bench/run.sh   (from anywhere)
#
# The AWS CLI loop dominates the run time: one aws process per call, about
# 1 to 1.5 s each on 2 cores, so 17 to 25 minutes for 1000 users.
#
# Environment:
#   USERS, ROLES   account size (default 1000 each)
#   CLI_USERS      users the CLI loop visits; 0 (default) means all. A smaller
#                  sample makes the CLI figures an extrapolation, labelled so.
#   SKIP_BUILD=1   measure the existing target/release/idrift without building
#
# Everything runs against a moto server that this script starts on a free
# 127.0.0.1 port and stops on exit. Credentials are dummies, the shared
# config files point at missing files and instance metadata is disabled, so
# no call can leave the machine. Logs, outputs and results.md go to
# bench/out/<UTC timestamp>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
users=${USERS:-1000}
roles=${ROLES:-1000}
cli_users=${CLI_USERS:-0}
account_id=123456789012 # moto's default account
out="$bench_dir/out/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

# --- Isolation: dummy credentials, no shared config, no metadata, no proxy.
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"
bench_isolate_aws "$out"

# --- Tools. The AWS CLI comes from PATH, else from a venv under bench/.venv.
for tool in moto_server python3 jq curl /usr/bin/time; do
    if ! command -v "$tool" > /dev/null; then
        echo "bench: $tool not found; install it (see docs/benchmarks.md)" >&2
        exit 2
    fi
done
if ! command -v aws > /dev/null; then
    log "aws not found on PATH; installing awscli into $bench_dir/.venv"
    python3 -m venv "$bench_dir/.venv"
    "$bench_dir/.venv/bin/pip" install --quiet awscli
    export PATH="$bench_dir/.venv/bin:$PATH"
fi

build_idrift

# --- moto on a free 127.0.0.1 port, stopped on exit.
trap bench_stop_moto EXIT
trap 'exit 130' INT TERM
bench_start_moto moto_server "$out/moto.log"

# --- Seed.
log "seeding $users users and $roles roles"
python3 "$bench_dir/seed.py" --endpoint-url "$endpoint" --users "$users" --roles "$roles" |
    tee "$out/seed.log"

# --- idrift scan, twice: a fresh snapshot folder, then the nightly case.
cat > "$out/idrift.toml" << EOF
[[aws.accounts]]
account_id = "$account_id"
endpoint_url = "$endpoint"
EOF

declare -A scan_row
run_scan() {
    local name=$1 dir="$out/$1" start_requests load rc=0
    mkdir -p "$dir"
    load=$(load_1min)
    start_requests=$(moto_requests "$out/moto.log")
    log "idrift $name"
    /usr/bin/time -v -o "$dir/time.txt" \
        "$idrift" scan --config "$out/idrift.toml" --snapshots "$out/snapshots" --format json \
        > "$dir/report.json" 2> "$dir/stderr.log" || rc=$?
    # Exit codes 0 (clean) and 1 (findings) are both fine here. 2 means a scope
    # or collection failed, so the figures would not be comparable.
    if [ "$rc" -gt 1 ]; then
        echo "bench: idrift $name exited with $rc; see $dir" >&2
        exit 2
    fi
    local requests metadata snapshot
    requests=$(($(moto_requests "$out/moto.log") - start_requests))
    metadata="$out/snapshots/.idrift/last-scan/aws/$account_id.json"
    cp "$metadata" "$dir/last-scan.json"
    snapshot="$out/snapshots/aws/$account_id.json"
    local found_users found_roles found_keys
    found_users=$(jq '[.identities[] | select(.kind == "aws_user")] | length' "$snapshot")
    found_roles=$(jq '[.identities[] | select(.kind == "aws_role")] | length' "$snapshot")
    found_keys=$(jq '[.identities[].credentials[]? | select(.kind == "access_key")] | length' "$snapshot")
    if [ "$found_users" != "$users" ] || [ "$found_roles" != "$roles" ] || [ "$found_keys" != "$users" ]; then
        echo "bench: idrift $name found $found_users users, $found_roles roles and" \
            "$found_keys access keys; expected $users, $roles and $users" >&2
        exit 2
    fi
    scan_row[$name]="| idrift scan ($2) | $(elapsed_seconds "$dir/time.txt") s \
| $(jq .api_calls "$dir/last-scan.json") | $requests | $(max_rss_mib "$dir/time.txt") MiB \
| $(cpu_seconds "$dir/time.txt") s | $load |"
}
run_scan scan-1 "fresh snapshot folder"
run_scan scan-2 "second scan, unchanged account"

# --- The AWS CLI loop.
cli_dir="$out/cli"
mkdir -p "$cli_dir"
load=$(load_1min)
start_requests=$(moto_requests "$out/moto.log")
log "AWS CLI loop ($([ "$cli_users" -gt 0 ] && echo "$cli_users" || echo "$users") users, one aws process per call)"
/usr/bin/time -v -o "$cli_dir/time.txt" \
    bash "$bench_dir/cli_loop.sh" "$endpoint" "$cli_dir/data" "$cli_users" > "$cli_dir/stdout.log"
cli_requests=$(($(moto_requests "$out/moto.log") - start_requests))
cli_calls=$(sed -n 's/^calls: //p' "$cli_dir/stdout.log")
cli_visited=$((cli_calls - 1))
cli_keys=$(cat "$cli_dir/data/access-keys/"*.json | jq -s '[.[].AccessKeyMetadata[]] | length')
expected_visited=$([ "$cli_users" -gt 0 ] && echo "$cli_users" || echo "$users")
if [ "$cli_visited" != "$expected_visited" ] || [ "$cli_keys" != "$expected_visited" ]; then
    echo "bench: the CLI loop visited $cli_visited users and found $cli_keys access keys;" \
        "expected $expected_visited of each" >&2
    exit 2
fi
cli_row="| AWS CLI loop, $cli_visited users | $(elapsed_seconds "$cli_dir/time.txt") s | $cli_calls \
| $cli_requests | $(max_rss_mib "$cli_dir/time.txt") MiB (largest single aws process) \
| $(cpu_seconds "$cli_dir/time.txt") s (all processes) | $load |"
if [ "$cli_visited" -lt "$users" ]; then
    # Scales by calls, assuming every call costs what the sampled ones did.
    estimate=$(awk -v t="$(elapsed_seconds "$cli_dir/time.txt")" -v n="$cli_calls" -v u="$users" \
        'BEGIN { printf "%.0f", t * (u + 1) / n }')
    cli_row="$cli_row
| AWS CLI loop, $users users (extrapolated from $cli_visited, not measured) | ~$estimate s | $((users + 1)) | - | - | - | - |"
fi

# One list-access-keys process on its own, for the per-process memory note.
/usr/bin/time -v -o "$cli_dir/one-call-time.txt" \
    aws iam list-access-keys --user-name bench-user-0000 --endpoint-url "$endpoint" > /dev/null

# --- Results.
{
    echo "# idrift benchmark run $(basename "$out")"
    echo
    echo "Account: $users users (one access key each), $roles roles, in moto."
    echo
    echo "| Run | Wall time | API calls (counted by the tool) | Requests moto logged | Peak RSS | CPU time (user + sys) | Load avg (1 min) at start |"
    echo "|---|---|---|---|---|---|---|"
    echo "${scan_row[scan-1]}"
    echo "${scan_row[scan-2]}"
    echo "$cli_row"
    echo
    echo "One \`aws iam list-access-keys\` process alone: $(elapsed_seconds "$cli_dir/one-call-time.txt") s," \
        "$(max_rss_mib "$cli_dir/one-call-time.txt") MiB max RSS."
    echo "idrift's own collection time (duration_ms in its scan metadata):" \
        "$(jq .duration_ms "$out/scan-1/last-scan.json") ms, then $(jq .duration_ms "$out/scan-2/last-scan.json") ms."
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- moto: $(python3 -c 'import moto; print(moto.__version__)')"
    echo "- AWS CLI: $(aws --version 2>&1)"
    echo "- CPU: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "- Memory: $(free -h | awk '/^Mem:/ { print $2 }') total"
    echo "- Kernel: $(uname -sr)"
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"
