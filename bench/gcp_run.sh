#!/usr/bin/env bash
# Benchmark `idrift scan` of many Google Cloud projects (by default 200 of 50
# service accounts each), served by bench/gcp_fake.py with a fixed latency
# per request.
#
# Usage: bench/gcp_run.sh   (from anywhere)
#
# Environment:
#   LATENCY_MS     the fake's wait before each response (default 50)
#   PROJECTS       projects to generate and scan (default 200)
#   ACCOUNTS       service accounts per project (default 50)
#   CONCURRENCIES  idrift's [gcp] concurrency values to measure (default "8 32")
#   REPEATS        runs per concurrency value (default 2)
#   SKIP_BUILD=1   measure the existing target/release/idrift without building
#
# Each service account has one USER_MANAGED and one SYSTEM_MANAGED key, and
# each project an IAM policy of 4 bindings (see bench/gcp_fake.py). Runs
# alternate between the concurrency values, and each run scans into an empty
# snapshot folder. The fake listens on a free 127.0.0.1 port and is stopped
# on exit. GOOGLE_*, GCE_* and CLOUDSDK_* variables and proxies are cleared,
# HOME is an empty folder, GOOGLE_APPLICATION_CREDENTIALS names an
# `authorized_user` file whose token_uri is the fake, and GCE_METADATA_HOST
# points at the fake, so no request leaves the machine.
# Logs, outputs and results.md go to bench/out/gcp-<UTC timestamp>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
latency_ms=${LATENCY_MS:-50}
projects=${PROJECTS:-200}
accounts=${ACCOUNTS:-50}
concurrencies=${CONCURRENCIES:-8 32}
repeats=${REPEATS:-2}
page_size=100 # idrift's default [gcp] page_size, set explicitly below
principals_per_project=2 # the policy's user and group; gcp_fake.py's OWNER and READERS
admins_per_project=2     # roles/owner to the user, roles/iam.serviceAccountAdmin to sa-001
out="$bench_dir/out/gcp-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

# --- Isolation: no Google Cloud or gcloud settings, no proxy.
while read -r name; do
    unset "$name"
done < <(env | sed -n 's/^\(GOOGLE_[A-Za-z0-9_]*\|GCE_[A-Za-z0-9_]*\|CLOUDSDK_[A-Za-z0-9_]*\|[A-Za-z_]*_[Pp][Rr][Oo][Xx][Yy]\)=.*/\1/p')
export NO_PROXY=127.0.0.1,localhost
export no_proxy=$NO_PROXY

require_tools python3 jq curl /usr/bin/time
if [ "$projects" -lt 1 ] || [ "$projects" -gt 999 ] || [ "$accounts" -lt 1 ] || [ "$accounts" -gt 999 ]; then
    echo "bench: PROJECTS and ACCOUNTS must be 1 to 999, because gcp_fake.py numbers them with 3 digits" >&2
    exit 2
fi

build_idrift

# After the build, which needs the real HOME for cargo and rustup: an empty
# HOME, so google-cloud-auth finds no gcloud credential file.
export HOME="$out/home"
mkdir -p "$HOME"

# --- The fake on a free 127.0.0.1 port, stopped on exit.
fake_pid=
trap 'stop_processes "$fake_pid"' EXIT
trap 'exit 130' INT TERM

python3 "$bench_dir/gcp_fake.py" --port-file "$out/fake.port" \
    --latency-ms "$latency_ms" --projects "$projects" --accounts "$accounts" \
    --user-keys 1 --system-keys 1 > "$out/fake.log" 2>&1 &
fake_pid=$!
wait_for_port_file "$fake_pid" "$out/fake.port" "$out/fake.log"
port=$(cat "$out/fake.port")
endpoint="http://127.0.0.1:$port"
export GCE_METADATA_HOST="127.0.0.1:$port"
write_gcp_credentials "$out/adc.json" "$endpoint/token"
export GOOGLE_APPLICATION_CREDENTIALS="$out/adc.json"
log "$(cat "$out/fake.log")"

# Prints the fake's request counts, as JSON.
fake_requests() {
    curl --silent --fail --noproxy '*' "$endpoint/bench/requests"
}


# Prints the fake's CPU time so far (user + system), in clock ticks.
fake_cpu_ticks() { process_cpu_ticks "$fake_pid"; }
clock_ticks=$(getconf CLK_TCK)


project_list=$(for n in $(seq "$projects"); do printf '"bench-project-%03d", ' "$n"; done)
write_config() {
    cat > "$1" << EOF
[gcp]
projects = [${project_list%, }]
iam_url = "$endpoint"
resource_manager_url = "$endpoint"
page_size = $page_size
concurrency = $2
EOF
}

expected_accounts=$((projects * accounts))
expected_identities=$((projects * (accounts + principals_per_project)))
expected_keys=$((projects * accounts)) # the user-managed ones; idrift skips system-managed keys
expected_admins=$((projects * admins_per_project))

# --- One scan at one concurrency, into an empty snapshot folder.
rows=()
runs=()
run_scan() {
    local name=$1 concurrency=$2 dir="$out/$1" load_before load_after fake_ticks rc=0
    mkdir -p "$dir"
    write_config "$dir/idrift.toml" "$concurrency"
    load_before=$(load_averages)
    fake_requests > "$dir/requests-before.json"
    fake_ticks=$(fake_cpu_ticks)
    log "idrift $name (concurrency $concurrency), load $load_before"
    /usr/bin/time -v -o "$dir/time.txt" \
        "$idrift" scan --config "$dir/idrift.toml" --snapshots "$dir/snapshots" --format json \
        > "$dir/report.json" 2> "$dir/stderr.log" || rc=$?
    load_after=$(load_averages)
    fake_ticks=$(($(fake_cpu_ticks) - fake_ticks))
    # Exit codes 0 (clean) and 1 (findings) are both fine here. 2 means a scope
    # or collection failed, so the figures would not be comparable.
    if [ "$rc" -gt 1 ]; then
        echo "bench: idrift $name exited with $rc; see $dir" >&2
        exit 2
    fi
    fake_requests > "$dir/requests-after.json"
    # Counts are differences, less the "after" query's own connection. The
    # fake's maximum in flight covers the time since the "before" query.
    jq -n --slurpfile before "$dir/requests-before.json" --slurpfile after "$dir/requests-after.json" \
        '$after[0] | with_entries(if .key == "max_in_flight" then . else .value -= ($before[0][.key] // 0) end)
            | .connections -= 1' > "$dir/requests.json"

    local snapshots=("$dir"/snapshots/gcp/*.json)
    local metadata=("$dir"/snapshots/.idrift/last-scan/gcp/*.json)
    if [ "${#snapshots[@]}" != "$projects" ] || [ "${#metadata[@]}" != "$projects" ]; then
        echo "bench: idrift $name wrote ${#snapshots[@]} snapshots and ${#metadata[@]} scan metadata" \
            "files; expected $projects of each" >&2
        exit 2
    fi
    local not_complete found_accounts found_identities found_keys found_admins
    not_complete=$(jq -s '[.[] | .collections | to_entries[] | select(.value.status != "complete")] | length' "${snapshots[@]}")
    found_accounts=$(jq -s '[.[].identities[] | select(.kind == "gcp_service_account")] | length' "${snapshots[@]}")
    found_identities=$(jq -s '[.[].identities[]] | length' "${snapshots[@]}")
    found_keys=$(jq -s '[.[].identities[].credentials[]? | select(.kind == "service_account_key")] | length' "${snapshots[@]}")
    found_admins=$(jq -s '[.[].identities[] | select(any(.admin_grants[]?; .via == "iam_policy"))] | length' "${snapshots[@]}")
    if [ "$not_complete" != 0 ] || [ "$found_accounts" != "$expected_accounts" ] ||
        [ "$found_identities" != "$expected_identities" ] || [ "$found_keys" != "$expected_keys" ] ||
        [ "$found_admins" != "$expected_admins" ]; then
        echo "bench: idrift $name wrote $not_complete collections that are not complete," \
            "$found_accounts service accounts, $found_identities identities, $found_keys" \
            "user-managed keys and $found_admins identities with admin roles; expected 0," \
            "$expected_accounts, $expected_identities, $expected_keys and $expected_admins" >&2
        exit 2
    fi

    local api_calls max_duration_ms
    api_calls=$(jq -s 'map(.api_calls) | add' "${metadata[@]}")
    max_duration_ms=$(jq -s 'map(.duration_ms) | max' "${metadata[@]}")
    runs+=("$name $max_duration_ms ms")

    # Lower bound on wall time. Each request takes at least the fake's
    # latency, and at most `concurrency` are in flight, so the requests need
    # ceil(calls / concurrency) rounds. A project's key calls start only
    # after its last service account page, so no scan is shorter than the
    # account pages plus one round either. The token request is left out.
    local account_pages bound
    account_pages=$(((accounts + page_size - 1) / page_size))
    bound=$(awk -v n="$api_calls" -v c="$concurrency" -v chain=$((account_pages + 1)) -v l="$latency_ms" \
        'BEGIN { rounds = int((n + c - 1) / c); if (chain > rounds) rounds = chain; printf "%.2f", rounds * l / 1000 }')
    rows+=("| $name | $concurrency | $(elapsed_seconds "$dir/time.txt") s | $bound s \
| $api_calls | $(jq .total "$dir/requests.json") | $(jq .non_200 "$dir/requests.json") \
| $(max_rss_mib "$dir/time.txt") MiB | $(cpu_seconds "$dir/time.txt") s \
| $(awk -v t="$fake_ticks" -v hz="$clock_ticks" 'BEGIN { printf "%.2f", t / hz }') s | $found_identities \
| $(jq .connections "$dir/requests.json") | $(jq .max_in_flight "$dir/requests.json") | $load_before | $load_after | $rc |")
}

uptime_start=$(uptime)
for repeat in $(seq "$repeats"); do
    for concurrency in $concurrencies; do
        run_scan "c$concurrency-run$repeat" "$concurrency"
    done
done
uptime_end=$(uptime)

# --- Results.
first_run="c${concurrencies%% *}-run1"
{
    echo "# idrift Google Cloud benchmark run $(basename "$out")"
    echo
    echo "Projects: $projects, each with $accounts service accounts (one USER_MANAGED and one" \
        "SYSTEM_MANAGED key each) and an IAM policy of 4 bindings, served by bench/gcp_fake.py" \
        "with $latency_ms ms per request. idrift config: page_size = $page_size, [retry] defaults." \
        "Each run scans into an empty snapshot folder."
    echo
    echo "| Run | Concurrency | Wall time | Lower bound (rounds x latency) | API calls (counted by idrift) | Requests the fake served | Non-200 responses | Peak RSS | CPU time (user + sys) | The fake's CPU time | Identities written | TCP connections | Max requests in flight at the fake | Load avg (1, 5, 15 min) before | Load avg after | Exit code |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Lower bound: the larger of ceil(API calls / concurrency) and the $((((accounts + page_size - 1) / page_size) + 1))" \
        "requests that one project makes one after another (service account pages, then a key listing)," \
        "times $latency_ms ms. It leaves out the token request and all processing."
    echo "Requests the fake served in $first_run, by kind, and the TCP connections idrift opened:" \
        "$(jq -c . "$out/$first_run/requests.json")"
    echo "Every run wrote $projects snapshots with every collection complete, $expected_accounts service" \
        "accounts, $expected_keys user-managed keys and $((projects * principals_per_project)) policy members" \
        "that are not service accounts."
    echo "idrift's own collection time (largest duration_ms in its scan metadata), by run:" \
        "$(IFS=,; echo "${runs[*]}" | sed 's/,/, /g')."
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- fake: bench/gcp_fake.py on $(python3 --version 2>&1)"
    machine_lines
    echo "- uptime at start: $uptime_start"
    echo "- uptime at end: $uptime_end"
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"
