# Shared setup for the AWS benchmarks (bench/run.sh, bench/peers_run.sh):
# the idrift release build, isolation from real AWS, a moto server on a free
# 127.0.0.1 port, and readers for `/usr/bin/time -v` reports. Source it: it defines functions
# and sets nothing until they are called.

bench_log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }

# Builds the release idrift in REPO ($1) unless SKIP_BUILD=1, and sets idrift
# (the binary) and idrift_commit. The commit is read now, because the tree
# may change while the benchmark runs, and any uncommitted change under src
# or to Cargo.toml or Cargo.lock is saved to $2/uncommitted.diff.
bench_build_idrift() {
    local repo=$1 out=$2
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        bench_log "building idrift (cargo build --release)"
        (cd "$repo" && cargo build --release)
    fi
    idrift="$repo/target/release/idrift"
    idrift_commit=$(git -C "$repo" rev-parse --short HEAD)
    git -C "$repo" diff HEAD -- src Cargo.toml Cargo.lock > "$out/uncommitted.diff"
    if [ -s "$out/uncommitted.diff" ]; then
        idrift_commit="$idrift_commit with uncommitted changes (see uncommitted.diff)"
    fi
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
            bench_log "moto listening on $endpoint (pid $moto_pid)"
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

# Reads one field of a `/usr/bin/time -v` report.
time_field() {
    sed -n "s/^[[:space:]]*$2: //p" "$1"
}

# Converts `/usr/bin/time -v` elapsed time ([h:]m:ss.cc) to seconds.
elapsed_seconds() {
    time_field "$1" 'Elapsed (wall clock) time (h:mm:ss or m:ss)' |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'
}

max_rss_mib() {
    time_field "$1" 'Maximum resident set size (kbytes)' | awk '{ printf "%.1f", $1 / 1024 }'
}

cpu_seconds() {
    local user system
    user=$(time_field "$1" 'User time (seconds)')
    system=$(time_field "$1" 'System time (seconds)')
    awk -v u="$user" -v s="$system" 'BEGIN { printf "%.2f", u + s }'
}

load_1min() { cut -d' ' -f1 /proc/loadavg; }
