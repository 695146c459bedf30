#!/usr/bin/env bash
# Benchmark `idrift diff OLD NEW` on two snapshot trees of 1,000,000 AWS IAM
# users, beside `git diff --no-index` on the same files.
#
# Usage: bench/diff_run.sh   (from anywhere)
#
# Environment:
#   IDENTITIES     users in the old tree (default 1000000)
#   SCOPES         AWS accounts they are spread over (default 200, so 5,000
#                  users a file)
#   REPEATS        runs of each command (default 2)
#   SKIP_BUILD=1   measure the existing target/release/idrift without building
#
# bench/diff_gen.py writes the trees once per run of this script: the new tree
# has 1,000 users added, 1,000 removed, a second access key on 1,000 and an
# attached AdministratorAccess policy on 100. The script checks that idrift
# reports exactly those findings. git runs with no system or global config,
# so local settings (pager, colour, external diff tools) cannot change the
# figures. Data, outputs and results.md go to bench/out/diff-<UTC timestamp>/.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
identities=${IDENTITIES:-1000000}
scopes=${SCOPES:-200}
repeats=${REPEATS:-2}
out="$bench_dir/out/diff-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"

export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL=/dev/null

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }

for tool in python3 jq git /usr/bin/time; do
    if ! command -v "$tool" > /dev/null; then
        echo "bench: $tool not found; install it (see docs/benchmarks.md)" >&2
        exit 2
    fi
done

build_idrift


mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# Formats a byte count in KiB below 1 MiB and in MiB above.
size() {
    awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'
}

# --- Data, generated once.
log "generating $identities users over $scopes accounts (bench/diff_gen.py)"
/usr/bin/time -v -o "$out/gen-time.txt" \
    python3 "$bench_dir/diff_gen.py" --out "$out/data" --identities "$identities" --scopes "$scopes" \
    > "$out/gen.log"
old="$out/data/old"
new="$out/data/new"
tree_bytes() { find "$1" -name '*.json' -printf '%s\n' | awk '{ s += $1 } END { print s }'; }
old_bytes=$(tree_bytes "$old")
new_bytes=$(tree_bytes "$new")
largest_file_bytes=$(find "$old/aws" "$new/aws" -name '*.json' -printf '%s\n' | sort -n | tail -n 1)
log "old tree $(mib "$old_bytes") MiB, new tree $(mib "$new_bytes") MiB, largest file $(mib "$largest_file_bytes") MiB"

# --- The runs. Each writes its stdout to a file, so the figures include
# producing the whole output but not a terminal's drawing of it.
rows=()
run() {
    local name=$1 label=$2 dir="$out/$1" load_before load_after rc=0
    shift 2
    mkdir -p "$dir"
    load_before=$(load_averages)
    log "$name: $*"
    /usr/bin/time -v -o "$dir/time.txt" "$@" > "$dir/stdout" 2> "$dir/stderr.log" || rc=$?
    load_after=$(load_averages)
    # idrift diff exits 1 when it reports findings, and git diff exits 1
    # when the trees differ. Anything else is a failure.
    if [ "$rc" -gt 1 ]; then
        echo "bench: $name exited with $rc; see $dir" >&2
        exit 2
    fi
    rows+=("| $label | $(elapsed_seconds "$dir/time.txt") s | $(cpu_seconds "$dir/time.txt") s \
| $(max_rss_mib "$dir/time.txt") MiB | $(size "$(stat -c %s "$dir/stdout")") | $rc \
| $load_before | $load_after |")
}

check_idrift_report() {
    local report="$out/$1/stdout" change expected found
    for change in identity_added identity_removed credential_added privilege_added; do
        expected=$(jq ".findings.$change" "$out/data/expected.json")
        found=$(jq --arg change "$change" '[.findings[] | select(.change == $change)] | length' "$report")
        log "$1: $found $change findings (generated $expected)"
        if [ "$found" != "$expected" ]; then
            echo "bench: $1 reported $found $change findings; expected $expected" >&2
            exit 2
        fi
    done
    expected=$(jq '[.findings[]] | add' "$out/data/expected.json")
    found=$(jq '.summary.findings' "$report")
    if [ "$found" != "$expected" ]; then
        echo "bench: $1 reported $found findings in all; expected $expected" >&2
        exit 2
    fi
}

for round in $(seq "$repeats"); do
    run "idrift-$round" "idrift diff --format json (run $round)" \
        "$idrift" diff "$old" "$new" --format json
    check_idrift_report "idrift-$round"
    run "git-stat-$round" "git diff --no-index --stat (run $round)" \
        git --no-pager diff --no-index --stat "$old" "$new"
    run "git-patch-$round" "git diff --no-index (run $round)" \
        git --no-pager diff --no-index "$old" "$new"
done

changed_files=$(grep -c '^diff --git ' "$out/git-patch-1/stdout" || true)
stat_summary=$(tail -n 1 "$out/git-stat-1/stdout")

# --- Results.
{
    echo "# idrift diff benchmark run $(basename "$out")"
    echo
    echo "Data: $identities AWS IAM users in the old tree, $((identities / scopes)) in each of" \
        "$scopes account files, $(jq .new_identities "$out/data/expected.json") in the new tree;" \
        "generated changes $(jq -c .findings "$out/data/expected.json")," \
        "seed $(jq .seed "$out/data/expected.json")."
    echo "Sizes: old tree $(mib "$old_bytes") MiB, new tree $(mib "$new_bytes") MiB" \
        "($old_bytes and $new_bytes bytes), largest file $(mib "$largest_file_bytes") MiB."
    echo "Generation: $(elapsed_seconds "$out/gen-time.txt") s, peak RSS $(max_rss_mib "$out/gen-time.txt") MiB."
    echo "idrift's findings matched the generated counts in every run."
    echo "git diff: $changed_files files changed; --stat summary: $stat_summary"
    echo
    echo "| Run | Wall time | CPU time (user + sys) | Peak RSS | Output size | Exit code | Load avg before (1, 5, 15 min) | Load avg after |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "## Environment"
    echo
    echo "- idrift: $("$idrift" --version), built from commit $idrift_commit"
    echo "- $(git --version), no system or global config"
    echo "- generator: bench/diff_gen.py on $(python3 --version 2>&1)"
    echo "- CPU: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "- Memory: $(free -h | awk '/^Mem:/ { print $2 }') total"
    echo "- Kernel: $(uname -sr)"
    echo "- uptime at the end: $(uptime)"
} > "$out/results.md"
cat "$out/results.md"
log "done; outputs in $out"
