# Shared steps of the bench/*_run.sh harnesses. Source it after setting
# bench_dir, repo_dir and out; it defines functions and sets nothing else.

# Logs a line to stderr with the time.
log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }

# Exits with 2 unless every tool named is on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" > /dev/null; then
            echo "bench: $tool not found; install it (see docs/benchmarks.md)" >&2
            exit 2
        fi
    done
}

# Unsets the variables whose names match the extended regular expression
# $1, such as '^(AZURE|MSI)_'.
unset_matching() {
    local name
    while read -r name; do
        unset "$name"
    done < <(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E "$1")
}

# Unsets every proxy variable and keeps loopback off any proxy.
clear_proxies() {
    unset_matching '^[A-Za-z_]*_[Pp][Rr][Oo][Xx][Yy]$'
    export NO_PROXY=127.0.0.1,localhost
    export no_proxy=$NO_PROXY
}

# Builds idrift in release mode unless SKIP_BUILD=1, then sets `idrift` to
# the binary and `idrift_commit` to the commit it was built from, with a
# note when the tree or the binary differs from that commit. Writes the
# uncommitted changes under src/ to $out/uncommitted.diff.
build_idrift() {
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        log "building idrift (cargo build --release)"
        (cd "$repo_dir" && cargo build --release)
    fi
    idrift="$repo_dir/target/release/idrift"
    # Recorded now, because the tree may change while the benchmark runs.
    idrift_commit=$(git -C "$repo_dir" rev-parse --short HEAD)
    git -C "$repo_dir" diff HEAD -- src Cargo.toml Cargo.lock > "$out/uncommitted.diff"
    if [ -s "$out/uncommitted.diff" ]; then
        idrift_commit="$idrift_commit with uncommitted changes (see uncommitted.diff)"
    fi
    # NOTE: with SKIP_BUILD=1 this names the tree the binary is measured
    # beside, which need not be the tree it was built from.
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        local last_src_change
        last_src_change=$(git -C "$repo_dir" log -1 --format=%ct -- src Cargo.toml Cargo.lock)
        if [ "$(stat -c %Y "$idrift")" -lt "$last_src_change" ]; then
            idrift_commit="$idrift_commit (but the binary is older than the last commit under src/; rebuild without SKIP_BUILD)"
        fi
    fi
}

# Waits up to 60 s for a fake started in the background as PID $1 to write
# its port file $2; exits with 2, naming the log $3, if it dies or is late.
wait_for_port_file() {
    local pid=$1 file=$2 fake_log=$3
    for _ in $(seq 300); do
        [ -s "$file" ] && return 0
        if ! kill -0 "$pid" 2> /dev/null; then
            echo "bench: the fake exited at start; see $fake_log" >&2
            exit 2
        fi
        sleep 0.2
    done
    echo "bench: the fake did not start within 60 s; see $fake_log" >&2
    exit 2
}

# Stops the processes whose ids are given, if they still run.
stop_processes() {
    local pid
    for pid in "$@"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
            kill "$pid"
            wait "$pid" 2> /dev/null || true
        fi
    done
}

# Writes an `authorized_user` credential file $1 whose token_uri is $2. The
# client id, client secret and refresh token are gcp_fake.py's CLIENT_ID,
# CLIENT_SECRET and REFRESH_TOKEN, which its token endpoint checks.
write_gcp_credentials() {
    jq -n --arg token_uri "$2" '{
        type: "authorized_user",
        client_id: "idrift-bench.apps.googleusercontent.com",
        client_secret: "idrift-bench-client-secret",
        refresh_token: "1//idrift-bench-refresh-token",
        token_uri: $token_uri
    }' > "$1"
}

# Reads one field of a `/usr/bin/time -v` report.
time_field() {
    sed -n "s/^[[:space:]]*$2: //p" "$1"
}

# Converts `/usr/bin/time -v` elapsed time ([h:]m:ss.cc) to seconds.
elapsed_seconds() {
    time_field "$1" 'Elapsed (wall clock) time (h:mm:ss or m:ss)' |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'
}

# Prints the max RSS of a `/usr/bin/time -v` report, in MiB.
max_rss_mib() {
    time_field "$1" 'Maximum resident set size (kbytes)' | awk '{ printf "%.1f", $1 / 1024 }'
}

# Prints the user + system time of a `/usr/bin/time -v` report, in seconds.
cpu_seconds() {
    local user system
    user=$(time_field "$1" 'User time (seconds)')
    system=$(time_field "$1" 'System time (seconds)')
    awk -v u="$user" -v s="$system" 'BEGIN { printf "%.2f", u + s }'
}

# Prints the CPU time (user + system) of process $1 so far, in clock ticks.
process_cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# The 1, 5 and 15 minute load averages.
load_averages() { cut -d' ' -f1-3 /proc/loadavg; }

# Prints the machine lines of a results.md "Environment" section.
machine_lines() {
    echo "- CPU: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "- Memory: $(free -h | awk '/^Mem:/ { print $2 }') total"
    echo "- Kernel: $(uname -sr)"
}
