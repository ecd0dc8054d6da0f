#!/usr/bin/env bash
# Pull-through benchmark, side by side on loopback with one docker-registry
# upstream holding a 1 GiB layer:
#   1. cold GET of the blob through Anchorage vs directly from the upstream
#   2. warm GET through Anchorage vs nginx (sendfile on) serving the same file
#   3. peak RSS of anchorage during 50 concurrent cold 1 GiB pulls
# Medians of RUNS (default 5) runs; prints a table with ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install nginx-light curl python3 docker-registry skopeo libcurl4-openssl-dev libssl-dev pkg-config
. bench/lib/common.sh
RUNS=${RUNS:-5}
swift build -c release --product anchorage >&2

BENCH_TMP=$(mktemp -d /tmp/anchorage-bench.XXXXXX)
chmod 755 "$BENCH_TMP"
UP=$(free_port); AP=$(free_port); NP=$(free_port)
start_registry "$BENCH_TMP/upstream" "$UP"
echo "generating and pushing a 1 GiB layer…" >&2
DIGEST=$(push_image "127.0.0.1:$UP" bench/big:v1 $((1 << 30)) 1 "$BENCH_TMP")
HEX=${DIGEST#sha256:}
BLOB="v2/bench/big/blobs/$DIGEST"

# 1. cold: a fresh cache per run; direct runs interleaved.
cold=(); direct=(); ttfb_a=(); ttfb_d=()
throughput "http://127.0.0.1:$UP/$BLOB" > /dev/null   # page cache warm for the upstream
for i in $(seq 1 "$RUNS"); do
    rm -rf "$BENCH_TMP/cache"
    pid=$(start_anchorage "$AP" "$BENCH_TMP/cache" "http://127.0.0.1:$UP" "$BENCH_TMP/anchorage.log")
    r=$(curl -s -o /dev/null -w '%{http_code} %{speed_download} %{time_starttransfer}' "http://127.0.0.1:$AP/$BLOB")
    [ "${r%% *}" = 200 ] || { echo "cold pull answered ${r%% *}" >&2; exit 1; }
    cold+=("$(echo "$r" | awk '{printf "%.0f", $2/1e6}')"); ttfb_a+=("$(echo "$r" | awk '{printf "%.2f", $3*1000}')")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    r=$(curl -s -o /dev/null -w '%{http_code} %{speed_download} %{time_starttransfer}' "http://127.0.0.1:$UP/$BLOB")
    direct+=("$(echo "$r" | awk '{printf "%.0f", $2/1e6}')"); ttfb_d+=("$(echo "$r" | awk '{printf "%.2f", $3*1000}')")
done

# 2. warm: Anchorage from its cache vs nginx serving the very same file.
pid=$(start_anchorage "$AP" "$BENCH_TMP/cache" "http://127.0.0.1:$UP" "$BENCH_TMP/anchorage.log")
mkdir -p "$BENCH_TMP/www"; ln -sf "$BENCH_TMP/cache/blobs/sha256/${HEX:0:2}/$HEX" "$BENCH_TMP/www/blob"
start_nginx_static "$BENCH_TMP/www" "$NP" "$BENCH_TMP/nginx"
throughput "http://127.0.0.1:$AP/$BLOB" > /dev/null; throughput "http://127.0.0.1:$NP/blob" > /dev/null
warm=(); ngx=()
for i in $(seq 1 "$RUNS"); do
    warm+=("$(throughput "http://127.0.0.1:$AP/$BLOB")")
    ngx+=("$(throughput "http://127.0.0.1:$NP/blob")")
done
kill "$pid"; wait "$pid" 2>/dev/null || true

# 3. peak RSS: 50 concurrent cold pulls of the 1 GiB blob (one upstream fetch, 49 followers).
rm -rf "$BENCH_TMP/cache"
pid=$(start_anchorage "$AP" "$BENCH_TMP/cache" "http://127.0.0.1:$UP" "$BENCH_TMP/anchorage.log")
rss_before=$(peak_rss_kib "$pid")
t0=$(date +%s.%N)
clients=()
for i in $(seq 1 50); do
    curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$AP/$BLOB" > "$BENCH_TMP/c50.$i" &
    clients+=($!)
done
wait "${clients[@]}" || true
t1=$(date +%s.%N)
ok=$(cat "$BENCH_TMP"/c50.* | grep -c '^200$' || true)
rss_peak=$(peak_rss_kib "$pid")
upstream_gets=$(grep -c "\"GET /$BLOB HTTP" "$BENCH_TMP/upstream/registry.log" || true)

med() { printf '%s\n' "$@" | median; }
mm() { printf '%s\n' "$@" | minmax; }
out="bench/results/pull-through-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# pull-through, 1 GiB blob, loopback, $(nproc) cores, $(uname -r), $RUNS runs (median, min-max)"
    printf '%-40s %16s %16s %8s\n' "scenario" "anchorage" "peer" "ratio"
    printf '%-40s %16s %16s %8s\n' "cold MB/s (peer: direct from upstream)" "$(med "${cold[@]}")" "$(med "${direct[@]}")" "$(ratio "$(med "${cold[@]}")" "$(med "${direct[@]}")")"
    printf '%-40s %16s %16s\n' "  min-max" "$(mm "${cold[@]}")" "$(mm "${direct[@]}")"
    printf '%-40s %16s %16s\n' "cold time to first byte, ms" "$(med "${ttfb_a[@]}")" "$(med "${ttfb_d[@]}")"
    printf '%-40s %16s %16s %8s\n' "warm MB/s (peer: nginx sendfile)" "$(med "${warm[@]}")" "$(med "${ngx[@]}")" "$(ratio "$(med "${warm[@]}")" "$(med "${ngx[@]}")")"
    printf '%-40s %16s %16s\n' "  min-max" "$(mm "${warm[@]}")" "$(mm "${ngx[@]}")"
    printf '%-40s %16s\n' "50 concurrent cold pulls: 200s" "$ok/50"
    printf '%-40s %16s\n' "  upstream GETs of the blob (all runs)" "$upstream_gets"
    printf '%-40s %16s\n' "  wall time, s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')"
    printf '%-40s %16s\n' "  peak RSS, MiB (at start: $((rss_before / 1024)))" "$((rss_peak / 1024))"
} | tee "$out"
