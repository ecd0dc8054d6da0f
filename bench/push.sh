#!/usr/bin/env bash
# Pushing to a hosted namespace: Anchorage against the Docker registry
# (docker-registry 2.8, filesystem storage) on the same machine, each fresh
# per scenario, every scenario RUNS times (default 3) with the order of the
# two alternating; medians, min-max, and Anchorage as a ratio of the registry.
#   1. skopeo copy of a 1 GiB single-layer image (MB/s, server CPU-seconds)
#   2. skopeo copy of a 10-layer image (10 x 40 MB)
#   3. 10 concurrent skopeo copies of different 200 MB layers (aggregate MB/s,
#      the server's peak RSS)
#   4. 1,000 chart uploads as helm cm-push makes them (multipart POSTs), then
#      index.yaml GETs under wrk against python3 -m http.server serving the
#      same bytes (the static floor)
# Writes the table to bench/results/push-<time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install wrk curl python3 docker-registry skopeo apache2-utils libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config
. bench/lib/common.sh
RUNS=${RUNS:-3}
BIG=${BIG:-$((1 << 30))}
swift build -c release --product anchorage >&2
BENCH_TMP=$(mktemp -d /tmp/anchorage-push.XXXXXX)
chmod 755 "$BENCH_TMP"
HZ=$(getconf CLK_TCK)
htpasswd -Bbc "$BENCH_TMP/htpasswd" bench bench >/dev/null 2>&1

echo "generating images (1 GiB, 10 x 40 MB, 10 x 200 MB)…" >&2
python3 Tests/bench/make_oci_image.py "$BENCH_TMP/big" --tag v1 --layers 1 --layer-size "$BIG" --seed big >/dev/null
python3 Tests/bench/make_oci_image.py "$BENCH_TMP/ten" --tag v1 --layers 10 --layer-size 40000000 --seed ten >/dev/null
for i in $(seq 1 10); do
    python3 Tests/bench/make_oci_image.py "$BENCH_TMP/c$i" --tag v1 --layers 1 --layer-size 200000000 --seed "c$i" >/dev/null
done
layout_bytes() { du -sb --apparent-size "$1/blobs" | awk '{print $1}'; }
BIG_BYTES=$(layout_bytes "$BENCH_TMP/big"); TEN_BYTES=$(layout_bytes "$BENCH_TMP/ten")
C_BYTES=0; for i in $(seq 1 10); do C_BYTES=$((C_BYTES + $(layout_bytes "$BENCH_TMP/c$i"))); done

# start_peer KIND: a fresh instance; sets PEER_HOST, PEER_PID, CREDS.
start_peer() {
    local kind=$1 port; port=$(free_port)
    local dir="$BENCH_TMP/peer-$kind-$RANDOM"
    mkdir -p "$dir"
    case $kind in
    anchorage)
        cat > "$dir/mirror.conf" <<CONF
[server]
listen = 127.0.0.1:$port
access_log = false
[cache]
path = $dir/cache
scrub_rate = 0
[auth]
htpasswd = $BENCH_TMP/htpasswd
[hosted "local"]
writers = bench
[charts "team"]
hosted = true
writers = bench
CONF
        .build/release/anchorage serve --config "$dir/mirror.conf" > "$dir/log" 2>&1 &
        PEER_PID=$!; track $PEER_PID
        CREDS=(--dest-creds bench:bench)
        wait_http "http://127.0.0.1:$port/healthz" ;;
    registry)
        start_registry "$dir" "$port"
        PEER_PID=$(pgrep -f "docker-registry serve $dir/config.yml" | head -1)
        CREDS=() ;;
    esac
    PEER_HOST=127.0.0.1:$port
}
stop_peer() { kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
push() { # LAYOUT NAME
    skopeo copy --quiet --dest-tls-verify=false "${CREDS[@]}" "oci:$1:v1" "docker://$PEER_HOST/local/$2:v1" >&2
}

declare -A R
record() { R["$1|$2"]+="$3 "; }   # scenario kind value
for run in $(seq 1 "$RUNS"); do
    order="anchorage registry"; [ $((run % 2)) = 0 ] && order="registry anchorage"
    for kind in $order; do
        echo "run $run: $kind" >&2
        start_peer "$kind"
        c0=$(cpu_ticks "$PEER_PID"); t0=$(date +%s.%N)
        push "$BENCH_TMP/big" big
        t1=$(date +%s.%N); c1=$(cpu_ticks "$PEER_PID")
        record 1 "$kind" "$(awk -v b="$BIG_BYTES" -v a="$t0" -v z="$t1" 'BEGIN {printf "%.0f", b / (z - a) / 1e6}')"
        record 1cpu "$kind" "$(awk -v c="$((c1 - c0))" -v hz="$HZ" 'BEGIN {printf "%.2f", c / hz}')"
        t0=$(date +%s.%N); push "$BENCH_TMP/ten" ten; t1=$(date +%s.%N)
        record 2 "$kind" "$(awk -v b="$TEN_BYTES" -v a="$t0" -v z="$t1" 'BEGIN {printf "%.0f", b / (z - a) / 1e6}')"
        stop_peer

        start_peer "$kind"
        t0=$(date +%s.%N)
        pids=(); for i in $(seq 1 10); do push "$BENCH_TMP/c$i" "c$i" & pids+=($!); done
        for p in "${pids[@]}"; do wait "$p"; done
        t1=$(date +%s.%N)
        record 3 "$kind" "$(awk -v b="$C_BYTES" -v a="$t0" -v z="$t1" 'BEGIN {printf "%.0f", b / (z - a) / 1e6}')"
        record 3rss "$kind" "$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$PEER_PID/status")"
        stop_peer
    done
done

# Charts: Anchorage's hosted repository only (the registry has no chart API).
echo "charts: 1,000 packages" >&2
python3 - "$BENCH_TMP/charts" <<'PY'
import io, os, sys, tarfile
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
for c in range(100):
    for v in range(10):
        name, version = f"chart{c}", f"1.{v}.0"
        files = {
            "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{v}\"\ndescription: Chart {c} version {v}\ntype: application\n",
            "values.yaml": "replicaCount: 1\nimage:\n  repository: nginx\n",
            "templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
        }
        with tarfile.open(os.path.join(out, f"{name}-{version}.tgz"), "w:gz") as t:
            for path, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{name}/{path}"); info.size = len(data)
                t.addfile(info, io.BytesIO(data))
PY
start_peer anchorage
t0=$(date +%s.%N)
for f in "$BENCH_TMP"/charts/*.tgz; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -u bench:bench -F "chart=@$f" "http://$PEER_HOST/charts/team/api/charts")
    [ "$code" = 201 ] || { echo "upload of $f answered $code" >&2; exit 1; }
done
t1=$(date +%s.%N)
UPLOADS=$(awk -v a="$t0" -v z="$t1" 'BEGIN {printf "%.0f", 1000 / (z - a)}')
mkdir -p "$BENCH_TMP/static"
curl -s -u bench:bench "http://$PEER_HOST/charts/team/index.yaml" -o "$BENCH_TMP/static/index.yaml"
INDEX_BYTES=$(stat -c %s "$BENCH_TMP/static/index.yaml")
SP=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$BENCH_TMP/static" "$SP" >/dev/null 2>&1 & track $!
wait_http "http://127.0.0.1:$SP/index.yaml"
AUTH="Authorization: Basic $(printf bench:bench | base64)"
for run in $(seq 1 "$RUNS"); do
    R["4|anchorage"]+="$(wrk -t2 -c64 -d8s -H "$AUTH" "http://$PEER_HOST/charts/team/index.yaml" | awk '/Requests\/sec/ {printf "%.0f", $2}') "
    R["4|floor"]+="$(rps "http://127.0.0.1:$SP/index.yaml") "
done
stop_peer

med() { echo "${R[$1]}" | tr ' ' '\n' | grep -v '^$' | median; }
mm() { echo "${R[$1]}" | tr ' ' '\n' | grep -v '^$' | minmax; }
OUT=bench/results/push-$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p bench/results
{
    echo "# bench/push.sh — $(date -u +%Y-%m-%dT%H:%MZ), RUNS=$RUNS, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)"
    echo
    printf "| %-52s | %-18s | %-18s | %-9s |\n" "scenario" "Anchorage" "Docker registry" "ratio"
    printf "|%s|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..20})" "$(printf -- '-%.0s' {1..20})" "$(printf -- '-%.0s' {1..11})"
    row() { # LABEL KEY UNIT [lower-is-better]
        local a r; a=$(med "$2|anchorage"); r=$(med "$2|registry")
        local q; if [ -n "${4:-}" ]; then q=$(ratio "$r" "$a"); else q=$(ratio "$a" "$r"); fi
        printf "| %-52s | %-18s | %-18s | %-9s |\n" "$1" "$a $3 ($(mm "$2|anchorage"))" "$r $3 ($(mm "$2|registry"))" "${q}x"
    }
    row "1 GiB single-layer push, MB/s" 1 ""
    row "1 GiB push, server CPU-s (ratio: registry/ours)" 1cpu "" lower
    row "10-layer push (10 x 40 MB), MB/s" 2 ""
    row "10 concurrent 200 MB pushes, aggregate MB/s" 3 ""
    row "10 concurrent pushes, server peak RSS MiB (reg/ours)" 3rss "" lower
    echo
    echo "Charts (Anchorage hosted repository): 1,000 cm-push uploads at $UPLOADS/s (one curl each, sequential);"
    a=$(med "4|anchorage"); f=$(med "4|floor")
    echo "index.yaml of 1,000 versions ($INDEX_BYTES bytes) under wrk -c64: $a req/s ($(mm "4|anchorage")) vs python3 -m http.server $f req/s ($(mm "4|floor")): $(ratio "$a" "$f")x the static floor."
} | tee "$OUT"
