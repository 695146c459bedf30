#!/usr/bin/env bash
# Benchmark `idrift scan` of one Entra ID tenant of 100,000 users, served by
# bench/azure_fake.py with a fixed latency per request.
#
# Usage: bench/azure_run.sh   (from anywhere)
#
# Environment:
#   LATENCY_MS     the fake's wait before each response (default 50)
#   PAGE_SIZE_CAP  the fake's maximum records per page (default 999)
#   CONCURRENCY    idrift's [azure] concurrency (default 8, idrift's default)
#   SKIP_BUILD=1   measure the existing target/release/idrift without building
#
# The fake generates 100,000 users, 20,000 service principals (two client
# secrets each), 5,000 applications (federated credentials on the even ones,
# 2,500 in all) and 5 role assignments. It listens on a free 127.0.0.1 port,
# serves the managed identity token endpoint as well as Graph, and is
# stopped on exit. AZURE_* and MSI_* variables and proxies are cleared and
# IDENTITY_ENDPOINT points at the fake, so no request leaves the machine.
# Logs, outputs and results.md go to bench/out/azure-<UTC timestamp>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
latency_ms=${LATENCY_MS:-50}
page_size_cap=${PAGE_SIZE_CAP:-999}
concurrency=${CONCURRENCY:-8}
page_size=999 # idrift's default [azure] page_size, set explicitly below
users=100000
service_principals=20000
applications=5000
federated=2500
tenant_id=0c0ffee0-0000-4000-8000-000000000001 # azure_fake.py's TENANT_ID
out="$bench_dir/out/azure-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

# --- Isolation: no Azure or managed identity settings, no proxy.
while read -r name; do
    unset "$name"
done < <(env | sed -n 's/^\(AZURE_[A-Za-z0-9_]*\|MSI_[A-Za-z0-9_]*\|IDENTITY_[A-Za-z0-9_]*\)=.*/\1/p')
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1,localhost
export no_proxy=$NO_PROXY

require_tools python3 jq curl /usr/bin/time

build_idrift

# --- The fake on a free 127.0.0.1 port, stopped on exit.
fake_pid=
trap 'stop_processes "$fake_pid"' EXIT
trap 'exit 130' INT TERM

python3 "$bench_dir/azure_fake.py" --port-file "$out/fake.port" \
    --latency-ms "$latency_ms" --page-size-cap "$page_size_cap" \
    --users "$users" --service-principals "$service_principals" \
    --applications "$applications" > "$out/fake.log" 2>&1 &
fake_pid=$!
wait_for_port_file "$fake_pid" "$out/fake.port" "$out/fake.log"
endpoint="http://127.0.0.1:$(cat "$out/fake.port")"
export IDENTITY_ENDPOINT="$endpoint/msi/token"
export IDENTITY_HEADER=idrift-bench-identity-header # azure_fake.py's IDENTITY_HEADER
log "$(cat "$out/fake.log")"

# Prints the fake's request counts, as JSON.
fake_requests() {
    curl --silent --fail --noproxy '*' "$endpoint/bench/requests"
}


load_1min() { cut -d' ' -f1 /proc/loadavg; }

cat > "$out/idrift.toml" << EOF
[azure]
page_size = $page_size
concurrency = $concurrency

[[azure.tenants]]
tenant_id = "$tenant_id"
credential = "managed_identity"
graph_url = "$endpoint"
EOF

# --- idrift scan, twice: a fresh snapshot folder, then the nightly case.
declare -A scan_row bound_detail
run_scan() {
    local name=$1 dir="$out/$1" load rc=0
    mkdir -p "$dir"
    load=$(load_1min)
    fake_requests > "$dir/requests-before.json"
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
    fake_requests > "$dir/requests-after.json"
    jq -n --slurpfile before "$dir/requests-before.json" --slurpfile after "$dir/requests-after.json" \
        '$after[0] | with_entries(.value -= ($before[0][.key] // 0))
            | .connections -= 1' > "$dir/requests.json" # less the "after" query's own

    local metadata="$out/snapshots/.idrift/last-scan/azure/$tenant_id.json"
    local snapshot="$out/snapshots/azure/$tenant_id.json"
    cp "$metadata" "$dir/last-scan.json"
    local found_users found_sps found_apps found_secrets found_federated
    found_users=$(jq '[.identities[] | select(.kind == "azure_user")] | length' "$snapshot")
    found_sps=$(jq '[.identities[] | select(.kind == "azure_service_principal")] | length' "$snapshot")
    found_apps=$(jq '[.identities[] | select(.kind == "azure_application")] | length' "$snapshot")
    found_secrets=$(jq '[.identities[].credentials[]? | select(.kind == "client_secret")] | length' "$snapshot")
    found_federated=$(jq '[.identities[].credentials[]? | select(.kind == "federated_credential")] | length' "$snapshot")
    if [ "$found_users" != "$users" ] || [ "$found_sps" != "$service_principals" ] ||
        [ "$found_apps" != "$applications" ] || [ "$found_secrets" != $((2 * service_principals)) ] ||
        [ "$found_federated" != "$federated" ]; then
        echo "bench: idrift $name found $found_users users, $found_sps service principals," \
            "$found_apps applications, $found_secrets client secrets and $found_federated" \
            "federated credentials; expected $users, $service_principals, $applications," \
            "$((2 * service_principals)) and $federated" >&2
        exit 2
    fi

    # Users 1 and 2 are Global Administrators, user 3 a Privileged Role
    # Administrator and service principal 1 an Application Administrator.
    # User 4's Directory Readers grants no write access, so it is left out.
    local found_admins
    found_admins=$(jq '[.identities[] | select(any(.admin_grants[]?; .via == "directory_role"))] | length' "$snapshot")
    if [ "$found_admins" != 4 ]; then
        echo "bench: idrift $name found $found_admins identities with directory roles; expected 4" >&2
        exit 2
    fi

    # Lower bound on wall time. idrift reads the four lists at once and
    # starts the federated credential calls, `concurrency` at a time, once
    # the application pages are read. So the bound is the longer of the
    # longest list and the application pages followed by those calls. Each
    # request takes at least the fake's latency.
    local list_pages app_pages federated_calls bound
    list_pages=$(jq '[.users, .servicePrincipals, .applications, .roleAssignments] | map(. // 0) | max' "$dir/requests.json")
    app_pages=$(jq '.applications // 0' "$dir/requests.json")
    federated_calls=$(jq '.federatedIdentityCredentials // 0' "$dir/requests.json")
    bound=$(awk -v p="$list_pages" -v a="$app_pages" -v f="$federated_calls" -v c="$concurrency" -v l="$latency_ms" \
        'BEGIN { chain = a + int((f + c - 1) / c); if (p > chain) chain = p; printf "%.2f", chain * l / 1000 }')
    scan_row[$name]="| idrift scan ($2) | $(elapsed_seconds "$dir/time.txt") s | $bound s \
| $(jq .api_calls "$dir/last-scan.json") | $(jq .total "$dir/requests.json") \
| $(max_rss_mib "$dir/time.txt") MiB | $(cpu_seconds "$dir/time.txt") s | $load | $rc |"
    bound_detail[$name]="the longer of $list_pages pages of the longest list and $app_pages application pages followed by $federated_calls federated credential calls, $concurrency at a time, at $latency_ms ms each"
}
run_scan scan-1 "empty snapshot folder"
run_scan scan-2 "unchanged tenant"

# --- Results.
{
    echo "# idrift Entra ID benchmark run $(basename "$out")"
    echo
    echo "Tenant: $users users, $service_principals service principals (two client secrets each)," \
        "$applications applications ($federated federated credentials), 5 role assignments," \
        "served by bench/azure_fake.py with $latency_ms ms per request and at most $page_size_cap records a page."
    echo "idrift config: page_size = $page_size, concurrency = $concurrency."
    echo
    echo "| Run | Wall time | Lower bound (sequential pages x latency) | API calls (counted by idrift) | Requests the fake served | Peak RSS | CPU time (user + sys) | Load avg (1 min) at start | Exit code |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "${scan_row[scan-1]}"
    echo "${scan_row[scan-2]}"
    echo
    echo "Lower bound of the first scan: ${bound_detail[scan-1]}."
    echo "Requests the fake served in the first scan, by kind, and the TCP connections idrift opened:" \
        "$(jq -c . "$out/scan-1/requests.json")"
    echo "idrift's own collection time (duration_ms in its scan metadata):" \
        "$(jq .duration_ms "$out/scan-1/last-scan.json") ms, then $(jq .duration_ms "$out/scan-2/last-scan.json") ms."
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- fake: bench/azure_fake.py on $(python3 --version 2>&1)"
    machine_lines
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"
