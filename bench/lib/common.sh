# Shared helpers for bench/ scripts: process tracking, free ports, medians.
# Every process started through `track` is killed on exit, by PID.
BENCH_PIDS=()
track() { BENCH_PIDS+=("$1"); }
bench_cleanup() {
    # Processes started in $(…) subshells (start_anchorage) cannot add to
    # BENCH_PIDS; they are found by their config path under BENCH_TMP.
    [ -n "${BENCH_TMP:-}" ] && pkill -f "$BENCH_TMP/" 2>/dev/null || true
    for p in "${BENCH_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${BENCH_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    [ -n "${BENCH_TMP:-}" ] && rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # URL
    for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "not answering: $1" >&2; return 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR==1{mi=$1} {ma=$1} END {printf "%s-%s", mi, ma}'; }

# Download throughput in MB/s (10^6) of one GET, body discarded.
# A non-200 answer aborts the benchmark instead of timing an error page.
throughput() {
    local r; r=$(curl -s -o /dev/null -w '%{http_code} %{speed_download}' "$1")
    [ "${r%% *}" = 200 ] || { echo "GET $1 answered ${r%% *}" >&2; exit 1; }
    echo "${r#* }" | awk '{printf "%.0f", $1/1e6}'
}
# wrk requests/s; fails when any response was not 2xx/3xx.
rps() { # URL [CONNECTIONS]
    local out; out=$(wrk -t2 -c"${2:-64}" -d8s "$1")
    if echo "$out" | grep -q "Non-2xx"; then echo "wrk saw errors from $1: $out" >&2; exit 1; fi
    echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }

start_nginx_static() { # ROOT PORT PREFIX
    local root=$1 port=$2 prefix=$3
    mkdir -p "$prefix/logs"
    cat > "$prefix/nginx.conf" <<NGX
daemon off;
worker_processes auto;
error_log $prefix/logs/error.log warn;
pid $prefix/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$port;
        root $root;
        location / { }
    }
}
NGX
    nginx -c "$prefix/nginx.conf" -p "$prefix" &
    track $!
    wait_http "http://127.0.0.1:$port/"  || true
}

start_registry() { # DIR PORT: a docker-registry upstream with storage under DIR
    local dir=$1 port=$2
    mkdir -p "$dir"
    cat > "$dir/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
health: {storagedriver: {enabled: false}}
YML
    docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    track $!
    wait_http "http://127.0.0.1:$port/v2/"
}

# Pushes a generated image; prints the digest of its largest layer.
push_image() { # REGISTRY_HOST NAME:TAG LAYER_BYTES LAYERS WORKDIR
    local host=$1 ref=$2 size=$3 layers=$4 work=$5
    local layout="$work/layout-$RANDOM"
    python3 Tests/bench/make_oci_image.py "$layout" --tag "${ref##*:}" --layers "$layers" --layer-size "$size" --seed "$ref" >/dev/null
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:${ref##*:}" "docker://$host/$ref" >&2
    python3 - "$layout" <<'PY'
import json, os, sys
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
d = idx["manifests"][0]["digest"].split(":")[1]
m = json.load(open(os.path.join(lay, "blobs", "sha256", d)))
print(max(m["layers"], key=lambda l: l["size"])["digest"])
PY
    rm -rf "$layout"
}

start_anchorage() { # PORT CACHE_DIR UPSTREAM_URL LOG: prints the PID
    local port=$1 cache=$2 up=$3 log=$4
    cat > "$cache.conf" <<CONF
[server]
listen = 127.0.0.1:$port
access_log = false
[cache]
path = $cache
max_size = 40GiB
[registry "upstream.bench"]
url = $up
CONF
    .build/release/anchorage serve --config "$cache.conf" > "$log" 2>&1 &
    local pid=$!
    track $pid
    wait_http "http://127.0.0.1:$port/healthz"
    echo $pid
}

peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
