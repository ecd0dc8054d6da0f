#!/usr/bin/env bash
# A 10,000-entry index.yaml: cold (first GET through the mirror: fetch, parse,
# rewrite, gzip) and warm GET latency (median of 21 curl runs), and
# requests/s under wrk (64 connections), Anchorage vs python3 -m http.server
# and nginx serving the same bytes statically.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install nginx-light wrk curl python3 libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config
. bench/lib/common.sh
swift build -c release --product anchorage >&2

BENCH_TMP=$(mktemp -d /tmp/anchorage-bench.XXXXXX)
chmod 755 "$BENCH_TMP"
mkdir -p "$BENCH_TMP/up" "$BENCH_TMP/static"
python3 - "$BENCH_TMP/up/index.yaml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("apiVersion: v1\nentries:\n")
    for c in range(100):
        f.write(f"  chart{c}:\n")
        for v in range(100):
            f.write(f"  - apiVersion: v2\n    created: \"2026-01-01T00:00:00Z\"\n    description: Chart {c} version {v}\n"
                    f"    digest: {c * 1000 + v:064x}\n    name: chart{c}\n    urls:\n    - https://example.invalid/chart{c}-1.{v}.0.tgz\n    version: 1.{v}.0\n")
    f.write("generated: \"2026-01-01T00:00:00Z\"\n")
PY
UP=$(free_port); AP=$(free_port); PP=$(free_port); NP=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$BENCH_TMP/up" "$UP" >/dev/null 2>&1 & track $!
wait_http "http://127.0.0.1:$UP/index.yaml"
cat > "$BENCH_TMP/a.conf" <<CONF
[server]
listen = 127.0.0.1:$AP
access_log = false
[cache]
path = $BENCH_TMP/cache
[charts "big"]
url = http://127.0.0.1:$UP
CONF
.build/release/anchorage serve --config "$BENCH_TMP/a.conf" > "$BENCH_TMP/a.log" 2>&1 & track $!
wait_http "http://127.0.0.1:$AP/healthz"
URL="http://127.0.0.1:$AP/charts/big/index.yaml"
cold=$(curl -s -o "$BENCH_TMP/static/index.yaml" -w '%{time_total}' "$URL" | awk '{printf "%.1f", $1*1000}')
# The peers serve the very bytes the mirror serves (the rewritten index).
python3 -m http.server --bind 127.0.0.1 --directory "$BENCH_TMP/static" "$PP" >/dev/null 2>&1 & track $!
start_nginx_static "$BENCH_TMP/static" "$NP" "$BENCH_TMP/nginx"
wait_http "http://127.0.0.1:$PP/index.yaml"
lat() { for _ in $(seq 1 21); do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done | awk '{print $1*1000}' | median; }
la=$(lat "$URL"); lp=$(lat "http://127.0.0.1:$PP/index.yaml"); ln=$(lat "http://127.0.0.1:$NP/index.yaml")
ra=$(rps "$URL"); rp=$(rps "http://127.0.0.1:$PP/index.yaml" 8); rn=$(rps "http://127.0.0.1:$NP/index.yaml")
size=$(stat -c %s "$BENCH_TMP/static/index.yaml")
out="bench/results/chart-index-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# 10,000-entry index.yaml ($size bytes rewritten), loopback, $(nproc) cores"
    printf '%-30s %12s %14s %12s %10s %10s\n' "" "anchorage" "http.server" "nginx" "vs http.s" "vs nginx"
    printf '%-30s %12s %14s %12s\n' "cold GET, ms (fetch+parse)" "$cold" "-" "-"
    printf '%-30s %12s %14s %12s %10s %10s\n' "warm GET, ms (median of 21)" "$la" "$lp" "$ln" "$(ratio "$lp" "$la")" "$(ratio "$ln" "$la")"
    printf '%-30s %12s %14s %12s %10s %10s\n' "wrk req/s (c64; http.s c8)" "$ra" "$rp" "$rn" "$(ratio "$ra" "$rp")" "$(ratio "$ra" "$rn")"
    echo "(latency ratios are peer/anchorage: above 1 means Anchorage is faster)"
} | tee "$out"
