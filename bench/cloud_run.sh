#!/usr/bin/env bash
# Benchmark one `idrift scan` of all three clouds at once, served by
# bench/cloud_fake.py with a fixed latency per request. By default the fake
# has 100 AWS accounts of 1,000 identities (500 users, 500 roles), one Entra
# ID tenant of 100,000 users and 20,000 service principals, and 200 Google
# Cloud projects of 50 service accounts.
#
# Usage: bench/cloud_run.sh   (from anywhere)
#
# Environment (defaults in brackets):
#   LATENCY_MS [50]            the fake's wait before each response
#   THROTTLE_RATE [0]          fraction of API requests that get the
#                              provider's throttling response
#   RETRY_AFTER_SECONDS [1]    Retry-After of Graph's 429
#   AWS_ACCOUNTS [100], AWS_USERS [500], AWS_ROLES [500]
#   AWS_PAGE_SIZE_CAP [1000]   most entities per GetAccountAuthorizationDetails page
#   AZURE_USERS [100000], AZURE_SERVICE_PRINCIPALS [20000], AZURE_APPLICATIONS [5000]
#   AZURE_PAGE_SIZE_CAP [999]  most records per Graph page
#   GCP_PROJECTS [200], GCP_ACCOUNTS [50]
#   idrift's limits, written to its config:
#   AWS_SCOPES [10]            aws.scopes_in_parallel
#   AWS_CONCURRENCY [8]        aws.concurrency (users at once per account)
#   AZURE_CONCURRENCY [8]      azure.concurrency
#   GCP_SCOPES [4]             gcp.scopes_in_parallel
#   GCP_CONCURRENCY [8]        gcp.concurrency (requests in flight)
#   SCAN_CONCURRENCY [AWS_SCOPES + 1 + GCP_SCOPES]  [scan] concurrency
#   FAKE_PROCESSES [3]         3: one fake process per provider; 1: one for all
#   REPEATS [3]                scans, each into an empty snapshot folder
#   SKIP_BUILD=1               measure the existing target/release/idrift
#
# The fake listens on free 127.0.0.1 ports and is stopped on exit. Every
# AWS_*, AZURE_*, MSI_*, IDENTITY_*, GOOGLE_*, GCE_* and CLOUDSDK_* variable
# and every proxy variable is cleared, and HOME is an empty folder. idrift
# then gets static AWS credentials, AWS_EC2_METADATA_DISABLED=true, missing
# AWS config files and each account's endpoint_url at the fake; the Entra
# managed identity endpoint and graph_url at the fake; an authorized_user
# credential file whose token_uri is the fake, GCE_METADATA_HOST at the fake
# and iam_url and resource_manager_url at the fake. No request leaves the
# machine. Logs, outputs and results.md go to bench/out/cloud-<UTC time>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
out="$bench_dir/out/cloud-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

latency_ms=${LATENCY_MS:-50}
throttle_rate=${THROTTLE_RATE:-0}
retry_after=${RETRY_AFTER_SECONDS:-1}
aws_accounts=${AWS_ACCOUNTS:-100}
aws_users=${AWS_USERS:-500}
aws_roles=${AWS_ROLES:-500}
aws_page_size_cap=${AWS_PAGE_SIZE_CAP:-1000}
azure_users=${AZURE_USERS:-100000}
azure_sps=${AZURE_SERVICE_PRINCIPALS:-20000}
azure_apps=${AZURE_APPLICATIONS:-5000}
azure_page_size_cap=${AZURE_PAGE_SIZE_CAP:-999}
gcp_projects=${GCP_PROJECTS:-200}
gcp_accounts=${GCP_ACCOUNTS:-50}
aws_scopes=${AWS_SCOPES:-10}
aws_concurrency=${AWS_CONCURRENCY:-8}
azure_concurrency=${AZURE_CONCURRENCY:-8}
gcp_scopes=${GCP_SCOPES:-4}
gcp_concurrency=${GCP_CONCURRENCY:-8}
scan_concurrency=${SCAN_CONCURRENCY:-$((aws_scopes + 1 + gcp_scopes))}
fake_processes=${FAKE_PROCESSES:-3}
repeats=${REPEATS:-3}
aws_max_items=1000   # idrift's MaxItems for GetAccountAuthorizationDetails
azure_page_size=999  # [azure] page_size, written below
gcp_page_size=100    # [gcp] page_size, written below
tenant_id=0c0ffee0-0000-4000-8000-000000000001 # azure_fake.py's TENANT_ID

# --- Isolation: no cloud settings of the caller, no proxy.
unset_matching '^(AWS|AZURE|MSI|IDENTITY|GOOGLE|GCE|CLOUDSDK)_'
clear_proxies
require_tools python3 jq curl awk /usr/bin/time

build_idrift
# After the build, which needs the real HOME for cargo: an empty HOME, so no
# SDK finds a credential file there.
export HOME="$out/home"
mkdir -p "$HOME"

# --- The fake: one process per provider, or one for all.
fake_pids=()
trap 'stop_processes "${fake_pids[@]}"' EXIT
trap 'exit 130' INT TERM
fake_args=(--latency-ms "$latency_ms" --throttle-rate "$throttle_rate"
    --retry-after-seconds "$retry_after"
    --aws-accounts "$aws_accounts" --aws-users "$aws_users" --aws-roles "$aws_roles"
    --aws-page-size-cap "$aws_page_size_cap"
    --azure-users "$azure_users" --azure-service-principals "$azure_sps"
    --azure-applications "$azure_apps" --azure-page-size-cap "$azure_page_size_cap"
    --gcp-projects "$gcp_projects" --gcp-accounts "$gcp_accounts")
if [ "$fake_processes" = 1 ]; then
    groups=(aws,azure,gcp)
else
    groups=(aws azure gcp)
fi
for group in "${groups[@]}"; do
    name=${group//,/-}
    python3 "$bench_dir/cloud_fake.py" --port-file "$out/fake-$name.ports" --providers "$group" \
        "${fake_args[@]}" > "$out/fake-$name.log" 2>&1 &
    fake_pids+=($!)
done
for index in "${!groups[@]}"; do
    name=${groups[$index]//,/-}
    wait_for_port_file "${fake_pids[$index]}" "$out/fake-$name.ports" "$out/fake-$name.log"
    log "$(cat "$out/fake-$name.log")"
done
ports=$(jq -s 'add' "$out"/fake-*.ports)
aws_url="http://127.0.0.1:$(jq .aws <<< "$ports")"
azure_url="http://127.0.0.1:$(jq .azure <<< "$ports")"
gcp_url="http://127.0.0.1:$(jq .gcp <<< "$ports")"

# --- Credentials, every one pointed at the fake.
export AWS_ACCESS_KEY_ID=AKIAIDRIFTBENCH00000 # aws_fake.py's BASE_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=idrift-bench-secret-not-real
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$HOME/no-aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$HOME/no-aws-credentials"
export AWS_REGION=us-east-1
export IDENTITY_ENDPOINT="$azure_url/msi/token"
export IDENTITY_HEADER=idrift-bench-identity-header # azure_fake.py's IDENTITY_HEADER
export GCE_METADATA_HOST="${gcp_url#http://}"
write_gcp_credentials "$out/adc.json" "$gcp_url/token"
export GOOGLE_APPLICATION_CREDENTIALS="$out/adc.json"

# --- idrift's config.
first_account=100000000001 # aws_fake.py's FIRST_ACCOUNT
{
    echo "[scan]"
    echo "concurrency = $scan_concurrency"
    echo
    echo "[aws]"
    echo "concurrency = $aws_concurrency"
    echo "scopes_in_parallel = $aws_scopes"
    for n in $(seq 0 $((aws_accounts - 1))); do
        account=$((first_account + n))
        echo
        echo "[[aws.accounts]]"
        echo "account_id = \"$account\""
        echo "role_arn = \"arn:aws:iam::$account:role/idrift-bench-reader\""
        echo "endpoint_url = \"$aws_url\""
    done
    echo
    echo "[azure]"
    echo "page_size = $azure_page_size"
    echo "concurrency = $azure_concurrency"
    echo "scopes_in_parallel = 1"
    echo
    echo "[[azure.tenants]]"
    echo "tenant_id = \"$tenant_id\""
    echo "credential = \"managed_identity\""
    echo "graph_url = \"$azure_url\""
    echo
    echo "[gcp]"
    printf 'projects = ['
    for n in $(seq "$gcp_projects"); do
        [ "$n" -gt 1 ] && printf ', '
        printf '"bench-project-%03d"' "$n"
    done
    echo "]"
    echo "iam_url = \"$gcp_url\""
    echo "resource_manager_url = \"$gcp_url\""
    echo "page_size = $gcp_page_size"
    echo "concurrency = $gcp_concurrency"
    echo "scopes_in_parallel = $gcp_scopes"
} > "$out/idrift.toml"

# --- The round-trip lower bound, in rounds of one latency each. Each term
# is a chain of requests that must follow one another; see
# docs/benchmarks.md for the derivation.
ceil() { echo $((($1 + $2 - 1) / $2)); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
max() {
    local best=$1 value
    for value in "$@"; do [ "$value" -gt "$best" ] && best=$value; done
    echo "$best"
}
# AWS: AssumeRole, GetCallerIdentity, the authorization details pages,
# two calls in a row per user, aws.concurrency users at once, then the
# OIDC and SAML provider listings.
aws_pages=$(ceil $((aws_users + aws_roles)) "$(min "$aws_max_items" "$aws_page_size_cap")")
aws_chain=$((2 + aws_pages + 2 * $(ceil "$aws_users" "$aws_concurrency") + 2))
aws_waves=$(ceil "$aws_accounts" "$(min "$aws_scopes" "$scan_concurrency")")
aws_rounds=$((aws_waves * aws_chain))
# Entra: the token, then the longest of the lists read at once, or the
# application pages followed by one federated credential call per
# application, azure.concurrency at a time. Service principals and
# applications are read with $expand=owners, which Graph pages by 100.
azure_page=$(min "$azure_page_size" "$azure_page_size_cap")
azure_expanded_page=$(min "$azure_page" 100)
azure_rounds=$((1 + $(max "$(ceil "$azure_users" "$azure_page")" "$(ceil "$azure_sps" "$azure_expanded_page")" \
    $(($(ceil "$azure_apps" "$azure_expanded_page") + $(ceil "$azure_apps" "$azure_concurrency"))))))
# Google Cloud: the token, then every call gcp.concurrency at a time, or
# each wave of projects' service account pages followed by a key listing.
# A project's calls: its account pages, the project policy, the pools
# listing, and per account a key listing and the account's own policy.
gcp_account_pages=$(ceil "$gcp_accounts" "$gcp_page_size")
gcp_calls=$((gcp_projects * (gcp_account_pages + 2 + 2 * gcp_accounts)))
gcp_rounds=$((1 + $(max "$(ceil "$gcp_calls" "$gcp_concurrency")" \
    $(($(ceil "$gcp_projects" "$(min "$gcp_scopes" "$scan_concurrency")") * (gcp_account_pages + 1))))))
# Every scope occupies a [scan] concurrency slot for at least its own chain.
scope_rounds=$((aws_accounts * aws_chain + azure_rounds + gcp_projects * (gcp_account_pages + 1)))
global_rounds=$(ceil "$scope_rounds" "$scan_concurrency")
bound_rounds=$(max "$aws_rounds" "$azure_rounds" "$gcp_rounds" "$global_rounds")
seconds_of() { awk -v r="$1" -v l="$latency_ms" 'BEGIN { printf "%.2f", r * l / 1000 }'; }
bound=$(seconds_of "$bound_rounds")
bound_text="max(AWS $aws_waves waves x $aws_chain = $aws_rounds, Entra $azure_rounds, Google Cloud $gcp_rounds, scan.concurrency $global_rounds) = $bound_rounds rounds x $latency_ms ms = $bound s"
log "lower bound: $bound_text"
echo "$bound_text" > "$out/bound.txt"

# --- Checks of a scan's snapshots against the generated data.
expect() {
    if [ "$2" != "$3" ]; then
        echo "bench: $1 is $2; expected $3 (see $dir)" >&2
        exit 2
    fi
}
check_snapshots() {
    local snapshots=$1
    local aws_files=("$snapshots"/aws/*.json) gcp_files=("$snapshots"/gcp/*.json)
    local azure_file="$snapshots/azure/$tenant_id.json"
    expect "AWS snapshot files" "${#aws_files[@]}" "$aws_accounts"
    expect "Google Cloud snapshot files" "${#gcp_files[@]}" "$gcp_projects"
    expect "collections not complete" "$(jq -s '[.[] | .collections | to_entries[] | select(.value.status != "complete")] | length' \
        "${aws_files[@]}" "$azure_file" "${gcp_files[@]}")" 0
    expect "AWS users, roles, keys, passwords, admins" \
        "$(jq -s -c '[.[].identities[]] | [
            (map(select(.kind == "aws_user")) | length),
            (map(select(.kind == "aws_role")) | length),
            ([.[].credentials[]? | select(.kind == "access_key")] | length),
            ([.[].credentials[]? | select(.kind == "console_password")] | length),
            (map(select((.admin_grants // []) | length > 0)) | length)]' "${aws_files[@]}")" \
        "[$((aws_accounts * aws_users)),$((aws_accounts * aws_roles)),$((aws_accounts * aws_users)),$((aws_accounts * (aws_users / 4))),$aws_accounts]"
    expect "Entra users, service principals, applications" \
        "$(jq -c '[.identities[]] | [
            (map(select(.kind == "azure_user")) | length),
            (map(select(.kind == "azure_service_principal")) | length),
            (map(select(.kind == "azure_application")) | length)]' "$azure_file")" \
        "[$azure_users,$azure_sps,$azure_apps]"
    expect "Google Cloud service accounts and user-managed keys" \
        "$(jq -s -c '[.[].identities[]] | [
            (map(select(.kind == "gcp_service_account")) | length),
            ([.[].credentials[]? | select(.kind == "service_account_key")] | length)]' "${gcp_files[@]}")" \
        "[$((gcp_projects * gcp_accounts)),$((gcp_projects * gcp_accounts))]"
}

# Prints every port's activity as one JSON object by provider.
activity() {
    local query=$1
    jq -n --argjson aws "$(curl -sf --noproxy '*' "$aws_url/bench/activity$query")" \
        --argjson azure "$(curl -sf --noproxy '*' "$azure_url/bench/activity$query")" \
        --argjson gcp "$(curl -sf --noproxy '*' "$gcp_url/bench/activity$query")" \
        '{aws: $aws, azure: $azure, gcp: $gcp}'
}
fake_cpu_ticks() {
    local pid total=0
    for pid in "${fake_pids[@]}"; do total=$((total + $(process_cpu_ticks "$pid"))); done
    echo "$total"
}
clock_ticks=$(getconf CLK_TCK)

# --- One scan into an empty snapshot folder.
rows=()
walls=()
run_scan() {
    local name=$1 dir="$out/$1" rc=0 load_before load_after ticks started
    dir="$out/$name"
    mkdir -p "$dir"
    activity '?reset=1' > /dev/null
    ticks=$(fake_cpu_ticks)
    load_before=$(load_averages)
    log "idrift $name, load $load_before"
    started=$(date +%s.%N)
    /usr/bin/time -v -o "$dir/time.txt" \
        "$idrift" scan --config "$out/idrift.toml" --snapshots "$dir/snapshots" --format json \
        > "$dir/report.json" 2> "$dir/stderr.log" || rc=$?
    load_after=$(load_averages)
    ticks=$(($(fake_cpu_ticks) - ticks))
    activity '' > "$dir/activity.json"
    if [ "$rc" -gt 1 ]; then
        echo "bench: idrift $name exited with $rc; see $dir" >&2
        exit 2
    fi
    check_snapshots "$dir/snapshots"

    local calls=() provider
    for provider in aws azure gcp; do
        calls+=("$(jq -s 'map(.api_calls) | add' "$dir"/snapshots/.idrift/last-scan/$provider/*.json)")
    done
    # Seconds from idrift's start to each provider's first request and last response.
    local windows
    windows=$(jq -r --argjson t0 "$started" 'to_entries | map("\(.key) \(.value.first_start - $t0 | . * 100 | round / 100)-\(.value.last_end - $t0 | . * 100 | round / 100) s") | join(", ")' "$dir/activity.json")
    local wall
    wall=$(elapsed_seconds "$dir/time.txt")
    walls+=("$wall")
    rows+=("| $name | $wall s | $(awk -v w="$wall" -v b="$bound" 'BEGIN { printf "%.2f", w / b }') \
| ${calls[0]} / ${calls[1]} / ${calls[2]} \
| $(jq -r '[.aws, .azure, .gcp] | map(.requests | tostring) | join(" / ")' "$dir/activity.json") \
| $(jq -r '[.aws, .azure, .gcp] | map(.throttled | tostring) | join(" / ")' "$dir/activity.json") \
| $(jq -r '[.aws, .azure, .gcp] | map(.max_in_flight | tostring) | join(" / ")' "$dir/activity.json") \
| $windows | $(max_rss_mib "$dir/time.txt") MiB | $(cpu_seconds "$dir/time.txt") s \
| $(awk -v t="$ticks" -v hz="$clock_ticks" 'BEGIN { printf "%.2f", t / hz }') s | $load_before | $load_after | $rc |")
    log "idrift $name: $wall s (bound $bound s)"
}

uptime_start=$(uptime)
for repeat in $(seq "$repeats"); do
    run_scan "run$repeat"
done
uptime_end=$(uptime)

# --- Results.
median=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
range=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n '1p;$p' | paste -sd' ' | awk '{ print $1 " to " $2 " s" }')
{
    echo "# idrift combined cloud benchmark run $(basename "$out")"
    echo
    echo "Workload: $aws_accounts AWS accounts of $aws_users users (one access key each, a console password" \
        "on every 4th) and $aws_roles roles; one Entra tenant of $azure_users users, $azure_sps service" \
        "principals and $azure_apps applications; $gcp_projects Google Cloud projects of $gcp_accounts service" \
        "accounts. bench/cloud_fake.py in $fake_processes process(es), $latency_ms ms per request, throttle rate" \
        "$throttle_rate, page caps AWS $aws_page_size_cap, Graph $azure_page_size_cap."
    echo
    echo "idrift limits: [scan] concurrency = $scan_concurrency; aws.scopes_in_parallel = $aws_scopes," \
        "aws.concurrency = $aws_concurrency; azure.concurrency = $azure_concurrency; gcp.scopes_in_parallel =" \
        "$gcp_scopes, gcp.concurrency = $gcp_concurrency; [retry] defaults."
    echo
    echo "Lower bound: $bound_text."
    echo
    echo "Wall time: median $median s, range $range over ${#walls[@]} runs; bound $bound s."
    echo
    echo "| Run | Wall time | Wall / bound | API calls idrift counted (AWS / Entra / Google Cloud) | Requests the fake served | Throttled (each retried) | Max in flight | First request to last response, from idrift's start | Peak RSS | CPU time (user + sys) | The fake's CPU time | Load avg before | Load avg after | Exit code |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Requests the fake served include the token requests (Entra, Google) and AssumeRole (AWS), which" \
        "idrift does not count. Every run wrote every snapshot with every collection complete and the" \
        "generated counts of users, roles, keys, passwords, service principals, applications and service accounts."
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- fake: bench/cloud_fake.py on $(python3 --version 2>&1)"
    machine_lines
    echo "- uptime at start: $uptime_start"
    echo "- uptime at end: $uptime_end"
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"
