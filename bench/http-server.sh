#!/usr/bin/env bash
# The HTTP server alone against nginx (sendfile on), side by side on loopback:
# a 1 GiB file (throughput, median of 5 curl runs) and a 1 KiB body (wrk,
# requests/s over 64 keep-alive connections). Prints a table and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install nginx-light wrk curl python3 libcurl4-openssl-dev libssl-dev pkg-config
. bench/lib/common.sh
swift build -c release --product anchorage-bench-server >&2

BENCH_TMP=$(mktemp -d /tmp/anchorage-bench.XXXXXX)
chmod 755 "$BENCH_TMP"   # nginx workers run as www-data
head -c $((1 << 30)) /dev/urandom > "$BENCH_TMP/big"
head -c 1024 /dev/zero | tr '\0' a > "$BENCH_TMP/small"
mkdir -p "$BENCH_TMP/www" && ln "$BENCH_TMP/big" "$BENCH_TMP/www/big" && cp "$BENCH_TMP/small" "$BENCH_TMP/www/small"

AP=$(free_port); NP=$(free_port)
.build/release/anchorage-bench-server "127.0.0.1:$AP" "$BENCH_TMP/big" & track $!
start_nginx_static "$BENCH_TMP/www" "$NP" "$BENCH_TMP/nginx"
wait_http "http://127.0.0.1:$AP/small"

# Warm the page cache for both, then alternate runs.
throughput "http://127.0.0.1:$AP/big" >/dev/null; throughput "http://127.0.0.1:$NP/big" >/dev/null
a=(); n=()
for _ in 1 2 3 4 5; do
    a+=("$(throughput "http://127.0.0.1:$AP/big")")
    n+=("$(throughput "http://127.0.0.1:$NP/big")")
done
am=$(printf '%s\n' "${a[@]}" | median); nm=$(printf '%s\n' "${n[@]}" | median)
ar=$(printf '%s\n' "${a[@]}" | minmax); nr=$(printf '%s\n' "${n[@]}" | minmax)

aw=$(rps "http://127.0.0.1:$AP/small"); nw=$(rps "http://127.0.0.1:$NP/small")

out="bench/results/http-server-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# HTTP server vs nginx (sendfile on), loopback, $(nproc) cores, $(uname -r)"
    printf '%-34s %14s %14s %8s\n' "scenario" "anchorage" "nginx" "ratio"
    printf '%-34s %14s %14s %8s\n' "1 GiB file, MB/s (median of 5)" "$am" "$nm" "$(ratio "$am" "$nm")"
    printf '%-34s %14s %14s\n' "  min-max" "$ar" "$nr"
    printf '%-34s %14s %14s %8s\n' "1 KiB body, req/s (wrk -c64 8s)" "$aw" "$nw" "$(ratio "$aw" "$nw")"
} | tee "$out"
