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

# Sets dummy static credentials and unsets every variable that could point
# the AWS SDKs at a profile, a role, a container endpoint or a proxy. The
# shared config files point at names under $1 that do not exist, and
# instance metadata is disabled, so no credential chain probes anything.
bench_isolate_aws() {
    local dir=$1
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ROLE_ARN \
        AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
        AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
        http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_CONFIG_FILE="$dir/missing-aws-config"
    export AWS_SHARED_CREDENTIALS_FILE="$dir/missing-aws-credentials"
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export NO_PROXY=127.0.0.1,localhost
    export no_proxy=$NO_PROXY
}

# Starts MOTO_SERVER ($1) on a free 127.0.0.1 port, logging to $2, and waits
# until it responds. Sets moto_pid and endpoint, and exports
# AWS_ENDPOINT_URL. The caller stops it with bench_stop_moto (in an EXIT
# trap). Any further variables for moto, such as MOTO_RECORDER_FILEPATH, are
# taken from the environment.
bench_start_moto() {
    local server=$1 log=$2 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    endpoint="http://127.0.0.1:$port"
    export AWS_ENDPOINT_URL=$endpoint
    "$server" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
    moto_pid=$!
    for _ in $(seq 100); do
        if curl --silent --noproxy '*' --output /dev/null "$endpoint/"; then
            log "moto listening on $endpoint (pid $moto_pid)"
            return 0
        fi
        if ! kill -0 "$moto_pid" 2> /dev/null; then
            echo "bench: moto_server exited at start; see $log" >&2
            return 2
        fi
        sleep 0.2
    done
    echo "bench: moto_server did not respond on $endpoint within 20 s; see $log" >&2
    return 2
}

bench_stop_moto() {
    if [ -n "${moto_pid:-}" ] && kill -0 "$moto_pid" 2> /dev/null; then
        kill "$moto_pid"
        wait "$moto_pid" 2> /dev/null || true
    fi
}

# Counts the requests moto has logged in $1, once the count stops changing
# (moto writes a request's log line after sending the response).
moto_requests() {
    local log=$1 before after
    after=$(grep -cE 'HTTP/1\.[01]" [0-9]{3} ' "$log" || true)
    for _ in $(seq 20); do
        before=$after
        sleep 0.25
        after=$(grep -cE 'HTTP/1\.[01]" [0-9]{3} ' "$log" || true)
        [ "$before" = "$after" ] && break
    done
    echo "$after"
}

# The 1 minute load average.
load_1min() { cut -d' ' -f1 /proc/loadavg; }
