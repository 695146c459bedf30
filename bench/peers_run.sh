#!/usr/bin/env bash
# Benchmark `idrift scan` against two other tools that collect the same IAM
# data, on one moto account of USERS users (one access key each) and ROLES
# roles, all served by the same moto server:
#   - Prowler (`prowler aws --services iam`, and a run of 3 IAM checks only),
#     which collects IAM and then runs its checks and writes its reports;
#   - bench/boto3_iam.py, a boto3 script that reads what idrift reads,
#     sequentially and with a thread pool of 8.
#
# Usage: bash bench/peers_run.sh   (from anywhere; about 20 minutes)
#
# Environment:
#   USERS, ROLES      account size (default 1000 each)
#   REPEATS           timed runs of each tool (default 3)
#   NETWORK_AUDIT=0   skip the untimed first round, in which every tool runs
#                     under `strace -e trace=connect` to list the addresses
#                     it connects to
#   SKIP_BUILD=1      measure the existing target/release/idrift
#
# Prowler and boto3 are installed from PyPI, at the versions pinned below,
# into bench/.venv-peers on first use. moto_server comes from .venv (which
# scripts/test.sh creates), else from PATH. The script starts moto on a free
# 127.0.0.1 port and stops it on exit. Credentials are dummies, the shared
# config files point at missing files, instance metadata is disabled, and
# AWS_ENDPOINT_URL points every SDK client at moto. HOME is an empty folder
# under the output folder, so no tool reads a user's configuration. moto's
# recorder logs every request it receives, which gives the request counts
# per operation. Logs, outputs and results.md go to
# bench/out/peers-<UTC timestamp>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
users=${USERS:-1000}
roles=${ROLES:-1000}
repeats=${REPEATS:-3}
network_audit=${NETWORK_AUDIT:-1}
prowler_version=5.46.0
boto3_version=1.40.61 # the boto3 that Prowler 5.46.0 requires, so both peers share it
account_id=123456789012 # moto's default account
out="$bench_dir/out/peers-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

# --- Tools.
for tool in python3 jq curl /usr/bin/time; do
    if ! command -v "$tool" > /dev/null; then
        echo "bench: $tool not found; install it (see docs/benchmarks.md)" >&2
        exit 2
    fi
done
if [ "$network_audit" = 1 ] && ! command -v strace > /dev/null; then
    echo "bench: strace not found; install it (apt-get install strace) or set NETWORK_AUDIT=0" >&2
    exit 2
fi
moto_server=$repo_dir/.venv/bin/moto_server
if [ ! -x "$moto_server" ]; then
    moto_server=$(command -v moto_server || true)
fi
if [ -z "$moto_server" ]; then
    echo "bench: moto_server not found in .venv or on PATH; run scripts/test.sh once" \
        "or pip install 'moto[server]'" >&2
    exit 2
fi

venv=$bench_dir/.venv-peers
installed_versions() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("prowler"), m.version("boto3"))' \
        2> /dev/null || true
}
if [ "$(installed_versions)" != "$prowler_version $boto3_version" ]; then
    log "installing prowler $prowler_version and boto3 $boto3_version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "prowler==$prowler_version" "boto3==$boto3_version"
fi
python=$venv/bin/python

build_idrift

# --- Isolation, from here on: nothing is installed or built past this point.
bench_isolate_aws "$out"
export HOME="$out/home"
mkdir -p "$HOME"

# --- moto, with its request recorder writing to a file of our own.
export MOTO_RECORDER_FILEPATH="$out/moto-recording.jsonl"
trap bench_stop_moto EXIT
trap 'exit 130' INT TERM
bench_start_moto "$moto_server" "$out/moto.log"
moto_log=$out/moto.log

log "seeding $users users and $roles roles"
"$python" "$bench_dir/seed.py" --endpoint-url "$endpoint" --users "$users" --roles "$roles" |
    tee "$out/seed.log"
# The listing every idrift and boto3 run must match, key ids included.
"$python" "$bench_dir/boto3_iam.py" --workers 8 --output "$out/expected.json" > /dev/null

: > "$MOTO_RECORDER_FILEPATH"
curl --silent --fail --noproxy '*' --output /dev/null -X POST \
    "$endpoint/moto-api/recorder/start-recording"

cat > "$out/idrift.toml" << EOF
[[aws.accounts]]
account_id = "$account_id"
endpoint_url = "$endpoint"
EOF

# The 3 Prowler checks that report every benchmark user (MFA), every role
# (all are service roles here) and every user's keys (from the credential
# report). Prowler's IAM service makes the same IAM calls for any IAM check,
# except the role last-accessed calls.
prowler_narrow_checks=(iam_user_hardware_mfa_enabled iam_user_accesskey_unused
    iam_role_cross_service_confused_deputy_prevention)

# Prints the command line of TOOL ($1) writing into DIR ($2), one word a line.
tool_command() {
    local dir=$2
    case $1 in
        idrift)
            printf '%s\n' "$idrift" scan --config "$out/idrift.toml" \
                --snapshots "$dir/snapshots" --format json
            ;;
        boto3-sequential)
            printf '%s\n' "$python" "$bench_dir/boto3_iam.py" --workers 1 --output "$dir/inventory.json"
            ;;
        boto3-8-threads)
            printf '%s\n' "$python" "$bench_dir/boto3_iam.py" --workers 8 --output "$dir/inventory.json"
            ;;
        prowler-iam)
            printf '%s\n' "$venv/bin/prowler" aws --services iam --region us-east-1 \
                --output-directory "$dir/output" --output-filename prowler \
                --no-banner --no-color --ignore-exit-code-3 \
                --log-level ERROR --log-file "$dir/prowler.log"
            ;;
        prowler-3-checks)
            printf '%s\n' "$venv/bin/prowler" aws --checks "${prowler_narrow_checks[@]}" \
                --region us-east-1 --output-formats json-ocsf \
                --output-directory "$dir/output" --output-filename prowler \
                --no-banner --no-color --ignore-exit-code-3 \
                --log-level ERROR --log-file "$dir/prowler.log"
            ;;
    esac
}

# Prints the collection check of TOOL ($1) on its output in DIR ($2) as JSON.
check_tool() {
    local check=("$python" "$bench_dir/peers_check.py" inventory --users "$users" --roles "$roles")
    case $1 in
        idrift)
            "${check[@]}" --expected-keys "$out/expected.json" idrift \
                "$2/snapshots/aws/$account_id.json"
            ;;
        boto3-*)
            "${check[@]}" --expected-keys "$out/expected.json" boto3 "$2/inventory.json"
            ;;
        prowler-*)
            "${check[@]}" prowler "$2/output/prowler.ocsf.json"
            ;;
    esac
}

# Prints the calls TOOL ($1) counted itself, from its output in DIR ($2).
tool_count() {
    case $1 in
        idrift) jq .api_calls "$2/snapshots/.idrift/last-scan/aws/$account_id.json" ;;
        boto3-*) jq .requests "$2/stdout.log" ;;
        prowler-*) echo - ;; # Prowler reports no call count.
    esac
}

tools=(idrift boto3-sequential boto3-8-threads prowler-iam prowler-3-checks)
runs=$out/runs.tsv
printf 'round\ttool\texit\twall_s\tcpu_s\trss_mib\tload\trequests\tlogged\terrors\ttool_count\tusers\troles\tkeys\tcomplete\n' \
    > "$runs"

# Runs TOOL ($2) once as round ROUND ($1), under strace when ROUND is
# "audit", and appends its row to runs.tsv.
run_tool() {
    local round=$1 tool=$2 dir="$out/$1/$2" rc=0
    local command prefix=() load recorded_before logged_before
    mkdir -p "$dir"
    mapfile -t command < <(tool_command "$tool" "$dir")
    if [ "$round" = audit ]; then
        prefix=(strace -f -qq -e trace=connect -o "$dir/connect.txt")
    fi
    load=$(load_1min)
    logged_before=$(moto_requests "$moto_log")
    recorded_before=$(wc -l < "$MOTO_RECORDER_FILEPATH")
    log "round $round: $tool"
    /usr/bin/time -v -o "$dir/time.txt" "${prefix[@]}" "${command[@]}" \
        > "$dir/stdout.log" 2> "$dir/stderr.log" || rc=$?
    local logged_after recorded_after
    logged_after=$(moto_requests "$moto_log")
    recorded_after=$(wc -l < "$MOTO_RECORDER_FILEPATH")
    "$python" "$bench_dir/peers_check.py" requests "$MOTO_RECORDER_FILEPATH" \
        "$recorded_before" "$recorded_after" > "$dir/requests.json"
    grep -oE 'HTTP/1\.[01]" [0-9]{3}' "$moto_log" | sed -n "$((logged_before + 1)),${logged_after}p" |
        awk '{ print $2 }' | sort | uniq -c > "$dir/status-codes.txt"
    local errors
    errors=$(awk '$2 !~ /^2/ { n += $1 } END { print n + 0 }' "$dir/status-codes.txt")

    # idrift exits with 1 on findings; the others with 0 (Prowler with -z).
    if [ "$rc" -gt 1 ] || { [ "$tool" != idrift ] && [ "$rc" -ne 0 ]; }; then
        echo "bench: $tool exited with $rc in round $round; see $dir" >&2
    fi
    local check='{"users": 0, "roles": 0, "access_keys": 0, "complete": false}'
    if check_output=$(check_tool "$tool" "$dir" 2> "$dir/check-stderr.log"); then
        check=$check_output
    fi
    echo "$check" > "$dir/check.json"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$tool" "$rc" "$(elapsed_seconds "$dir/time.txt")" "$(cpu_seconds "$dir/time.txt")" \
        "$(max_rss_mib "$dir/time.txt")" "$load" "$((recorded_after - recorded_before))" \
        "$((logged_after - logged_before))" "$errors" "$(tool_count "$tool" "$dir")" \
        "$(jq .users <<< "$check")" "$(jq .roles <<< "$check")" "$(jq .access_keys <<< "$check")" \
        "$(jq .complete <<< "$check")" >> "$runs"
    if [ "$(jq .complete <<< "$check")" != true ]; then
        echo "bench: $tool in round $round did not collect every user, role and key; see $dir" >&2
    fi
    # The full Prowler run writes about 170 MB of reports, so only the last
    # round's are kept.
    if [ "$round" != "$repeats" ] && [ -d "$dir/output" ]; then
        rm -rf "$dir/output"
    fi
}

# Lists the addresses a traced tool connected to, with counts.
connect_destinations() {
    grep -oE 'sa_family=AF_(INET6?|UNIX), [^}]*' "$1" |
        sed -E 's/sin6?_port=htons\([0-9]+\), //' | sort | uniq -c
}

if [ "$network_audit" = 1 ]; then
    for tool in "${tools[@]}"; do
        run_tool audit "$tool"
    done
fi
for round in $(seq "$repeats"); do
    for tool in "${tools[@]}"; do
        run_tool "$round" "$tool"
    done
done

# --- Results.
{
    echo "# Peer benchmark run $(basename "$out")"
    echo
    echo "Account: $users users (one access key each), $roles roles, in moto." \
        "Timed runs: $repeats of each tool, in turn."
    echo
    "$python" "$bench_dir/peers_check.py" summary "$runs"
    echo
    echo "Requests per operation in the last round (moto's recorder):"
    echo
    for tool in "${tools[@]}"; do
        echo "- $tool: $(jq -c .by_operation "$out/$repeats/$tool/requests.json")"
    done
    if [ "$network_audit" = 1 ]; then
        echo
        echo "Connections in the audit round (strace -e trace=connect, all threads):"
        echo
        for tool in "${tools[@]}"; do
            echo "- $tool: $(connect_destinations "$out/audit/$tool/connect.txt" | awk '{ $1 = $1; print }' |
                paste -sd ';' -)"
        done
    fi
    echo
    echo "Every run: $runs"
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- Prowler: $("$python" -c 'import importlib.metadata as m; print(m.version("prowler"))')," \
        "boto3 $("$python" -c 'import boto3; print(boto3.__version__)')," \
        "botocore $("$python" -c 'import botocore; print(botocore.__version__)')," \
        "$("$python" --version)"
    echo "- moto: $("$(dirname "$moto_server")/python" -c 'import moto; print(moto.__version__)' 2> /dev/null ||
        python3 -c 'import moto; print(moto.__version__)')"
    echo "- CPU: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "- Memory: $(free -h | awk '/^Mem:/ { print $2 }') total"
    echo "- Kernel: $(uname -sr)"
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"

# A run that failed or missed a user, role or key makes the figures
# incomparable, so the script then exits with 1 after writing them.
failed_runs=$(awk -F'\t' 'NR > 1 {
    exit_failed = ($2 == "idrift") ? $3 > 1 : $3 != 0
    if ($15 != "true" || exit_failed) n++
} END { print n + 0 }' "$runs")
if [ "$failed_runs" -gt 0 ]; then
    echo "bench: $failed_runs run(s) failed or missed a user, role or key; see $runs" >&2
    exit 1
fi
