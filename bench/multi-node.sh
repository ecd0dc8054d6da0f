#!/usr/bin/env bash
# Several nodes sharing an S3-compatible store (SeaweedFS `weed mini` on
# loopback, real SigV4), against one docker-registry upstream; RUNS rounds
# (default 3), medians and min-max, ratios measured in the same run:
#   1. second-tier hit: a node with an empty disk serving a 500 MB blob that
#      the bucket holds, against curl fetching the same object straight from
#      the store, and against the Docker registry 2.8 (its s3 driver, same
#      store, redirect disabled) serving the blob from the store
#   2. 3 nodes x 20 clients cold on one 500 MB blob ([cluster] peers): wall
#      time and upstream fetches, against one node with 20 clients
#   3. pushes into the store: skopeo copy of a fresh 10-layer image (10 x 40
#      MB) to a hosted namespace of a node, against the registry's s3 driver
# Writes the table to bench/results/multi-node-<time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install curl python3 docker-registry skopeo apache2-utils libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config
. scripts/lib/install-seaweedfs.sh
install_seaweedfs "$PWD/.build-tools/weed"
. bench/lib/common.sh
RUNS=${RUNS:-3}
MID=${MID:-500000000}
swift build -c release --product anchorage >&2
BENCH_TMP=$(mktemp -d /tmp/anchorage-multi.XXXXXX)
AK=AKBENCHMULTINODE SK=bench-multinode-secret
S3=http://127.0.0.1:8333
s3curl() { curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }

echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"'$AK'","secretKey":"'$SK'"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' > "$BENCH_TMP/s3.json"
mkdir -p "$BENCH_TMP/weed"
.build-tools/weed mini -dir="$BENCH_TMP/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$BENCH_TMP/s3.json" -admin.ui=false > "$BENCH_TMP/weed.log" 2>&1 &
track $!
for _ in $(seq 1 150); do [ "$(curl -s -o /dev/null -w '%{http_code}' $S3/ || true)" = 200 ] && break; sleep 0.2; done
s3curl -X PUT -o /dev/null "$S3/anchorage"; s3curl -X PUT -o /dev/null "$S3/registry"

UP=$(free_port)
start_registry "$BENCH_TMP/upstream" "$UP"
echo "generating a 500 MB image…" >&2
D=$(push_image "127.0.0.1:$UP" bench/mid:v1 "$MID" 1 "$BENCH_TMP")
upstream_gets() { grep -c "\"GET /v2/bench/mid/blobs/$D " "$BENCH_TMP/upstream/registry.log" || true; }

# node PORT DIR [PEERS] [EXTRA]: an Anchorage node with the bucket (and
# [cluster] PEERS, and EXTRA config lines).
node() {
    local port=$1 dir=$2 peers=${3:-} extra=${4:-}
    mkdir -p "$dir"
    { printf '[server]\nlisten = 127.0.0.1:%s\naccess_log = false\n[cache]\npath = %s/cache\nmax_size = 20GiB\nscrub_rate = 0\n' "$port" "$dir"
      printf '[registry "upstream.bench"]\nurl = http://127.0.0.1:%s\n' "$UP"
      printf '[storage]\nbackend = s3\nendpoint = %s\nbucket = anchorage\n' "$S3"
      [ -n "$peers" ] && printf '[cluster]\nself = http://127.0.0.1:%s\npeers = %s\n' "$port" "$peers"
      printf '%s\n' "$extra"; } > "$dir/mirror.conf"
    AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK .build/release/anchorage serve --config "$dir/mirror.conf" > "$dir/log" 2>&1 &
    track $!
    NODE_PID=$!
    wait_http "http://127.0.0.1:$port/healthz"
}
speed() { local r; r=$(curl -s -o /dev/null -w '%{http_code} %{speed_download}' "$@"); [ "${r%% *}" = 200 ] || { echo "GET $* answered ${r%% *}" >&2; exit 1; }; echo "${r#* }" | awk '{printf "%.0f", $1/1e6}'; }
declare -A R
record() { local key=$1; shift; R[$key]="$(printf '%s\n' "$@" | median)|$(printf '%s\n' "$@" | minmax)"; }
med() { echo "${R[$1]}" | cut -d'|' -f1; }
rng() { echo "${R[$1]}" | cut -d'|' -f2; }

# The blob into the bucket once, through a first node.
P=$(free_port); node "$P" "$BENCH_TMP/seed"
curl -s -o /dev/null "http://127.0.0.1:$P/v2/bench/mid/blobs/$D"
for _ in $(seq 1 600); do [ "$(s3curl -I -o /dev/null -w '%{http_code}' "$S3/anchorage/blobs/sha256/${D#sha256:}")" = 200 ] && break; sleep 0.2; done
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true
# The registry with the same store: the image pushed into its bucket.
RP=$(free_port); mkdir -p "$BENCH_TMP/reg"
cat > "$BENCH_TMP/reg/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  s3: {accesskey: $AK, secretkey: $SK, region: us-east-1, regionendpoint: $S3, bucket: registry, secure: false, v4auth: true, rootdirectory: /reg}
  redirect: {disable: true}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$RP}
health: {storagedriver: {enabled: false}}
YML
# The s3 driver refuses to start with AWS_CA_BUNDLE set (some CI images set it).
env -u AWS_CA_BUNDLE docker-registry serve "$BENCH_TMP/reg/config.yml" > "$BENCH_TMP/reg/log" 2>&1 &
track $!
wait_http "http://127.0.0.1:$RP/v2/"
skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$UP/bench/mid:v1" "docker://127.0.0.1:$RP/bench/mid:v1" >&2

# 1. Second-tier hits, in rounds with the order rotating.
declare -A V1
for i in $(seq 1 "$RUNS"); do
    order=(anchorage direct registry); order=("${order[@]:$(( (i - 1) % 3 ))}" "${order[@]:0:$(( (i - 1) % 3 ))}")
    for p in "${order[@]}"; do
        case $p in
        anchorage) P=$(free_port); node "$P" "$BENCH_TMP/hit-$i"
                   V1[$p]+=" $(speed "http://127.0.0.1:$P/v2/bench/mid/blobs/$D")"
                   kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; rm -rf "$BENCH_TMP/hit-$i" ;;
        direct)    V1[$p]+=" $(speed --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3/anchorage/blobs/sha256/${D#sha256:}")" ;;
        registry)  V1[$p]+=" $(speed "http://127.0.0.1:$RP/v2/bench/mid/blobs/$D")" ;;
        esac
    done
done
# shellcheck disable=SC2086 # word splitting of the lists is intended
for p in anchorage direct registry; do record "1,$p" ${V1[$p]}; done

# 2. Cold: 20 clients per node, 3 nodes with [cluster] peers against one node.
# Each run uses a fresh bucket prefix-free store state: the blob is deleted first.
declare -A W2 G2
clients() { # URL... : every URL fetched by its own curl at once; prints the wall seconds
    local t0 t1 pids=() u
    t0=$(date +%s.%N)
    for u in "$@"; do curl -s -o /dev/null "$u" & pids+=($!); done
    for u in "${pids[@]}"; do wait "$u" || echo "a client failed" >&2; done
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}'
}
for i in $(seq 1 "$RUNS"); do
    for shape in single cluster; do
        s3curl -X DELETE -o /dev/null "$S3/anchorage/blobs/sha256/${D#sha256:}"
        before=$(upstream_gets)
        if [ "$shape" = single ]; then
            P=$(free_port); node "$P" "$BENCH_TMP/c1-$i"; pids=("$NODE_PID")
            urls=(); for _ in $(seq 1 20); do urls+=("http://127.0.0.1:$P/v2/bench/mid/blobs/$D"); done
        else
            ports=("$(free_port)" "$(free_port)" "$(free_port)")
            peers="http://127.0.0.1:${ports[0]}, http://127.0.0.1:${ports[1]}, http://127.0.0.1:${ports[2]}"
            pids=(); urls=()
            for k in 0 1 2; do node "${ports[$k]}" "$BENCH_TMP/c3-$i-$k" "$peers"; pids+=("$NODE_PID")
                for _ in $(seq 1 20); do urls+=("http://127.0.0.1:${ports[$k]}/v2/bench/mid/blobs/$D"); done; done
        fi
        W2[$shape]+=" $(clients "${urls[@]}")"
        G2[$shape]+=" $(( $(upstream_gets) - before ))"
        for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
        rm -rf "$BENCH_TMP"/c1-* "$BENCH_TMP"/c3-*
    done
done
# shellcheck disable=SC2086
for s in single cluster; do record "2wall,$s" ${W2[$s]}; record "2gets,$s" ${G2[$s]}; done

# 3. Pushes into the store, a fresh image per round (nothing to skip), the
# two servers alternating.
htpasswd -Bbc "$BENCH_TMP/htpasswd" bench bench >/dev/null 2>&1
P=$(free_port); node "$P" "$BENCH_TMP/push" "" "$(printf '[auth]\nhtpasswd = %s\n[hosted "local"]\nwriters = bench' "$BENCH_TMP/htpasswd")"
PUSH_MB=400
declare -A V3
push() { # LAYOUT HOST REPO: prints MB/s
    local t0 t1
    t0=$(date +%s.%N)
    skopeo copy --quiet --dest-tls-verify=false --dest-creds bench:bench "oci:$1:v1" "docker://$2/$3:v1" >&2
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v mb="$PUSH_MB" 'BEGIN {printf "%.0f", mb/(b-a)}'
}
for i in $(seq 1 "$RUNS"); do
    python3 Tests/bench/make_oci_image.py "$BENCH_TMP/ten-$i" --tag v1 --layers 10 --layer-size 40000000 --seed "push-$i" >/dev/null
    order=(anchorage registry); [ $((i % 2)) = 0 ] && order=(registry anchorage)
    for p in "${order[@]}"; do
        case $p in
        anchorage) V3[$p]+=" $(push "$BENCH_TMP/ten-$i" "127.0.0.1:$P" "local/push-$i")" ;;
        registry)  V3[$p]+=" $(push "$BENCH_TMP/ten-$i" "127.0.0.1:$RP" "bench/push-$i")" ;;
        esac
    done
    rm -rf "$BENCH_TMP/ten-$i"
done
# shellcheck disable=SC2086
for p in anchorage registry; do record "3,$p" ${V3[$p]}; done
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true

out="bench/results/multi-node-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# bench/multi-node.sh — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), SeaweedFS $(.build-tools/weed version 2>/dev/null | awk '{print $3}'), RUNS=$RUNS"
    printf '%-52s %-22s %-22s %-22s %8s %8s\n' "scenario" "anchorage" "curl from the store" "registry (s3 driver)" "A/curl" "A/reg"
    printf '%-52s %-22s %-22s %-22s %8s %8s\n' "1 second-tier hit, 500 MB, empty local disk, MB/s" "$(med 1,anchorage) ($(rng 1,anchorage))" "$(med 1,direct) ($(rng 1,direct))" "$(med 1,registry) ($(rng 1,registry))" \
        "$(ratio "$(med 1,anchorage)" "$(med 1,direct)")" "$(ratio "$(med 1,anchorage)" "$(med 1,registry)")"
    echo
    printf '%-52s %-22s %-22s %8s\n' "scenario (lower is better)" "3 nodes x 20 clients" "1 node x 20 clients" "3/1"
    printf '%-52s %-22s %-22s %8s\n' "2 cold 500 MB blob, wall s" "$(med 2wall,cluster) ($(rng 2wall,cluster))" "$(med 2wall,single) ($(rng 2wall,single))" "$(ratio "$(med 2wall,cluster)" "$(med 2wall,single)")"
    printf '%-52s %-22s %-22s\n' "2 upstream GETs of the blob per run" "$(med 2gets,cluster) ($(rng 2gets,cluster))" "$(med 2gets,single) ($(rng 2gets,single))"
    echo
    printf '%-52s %-22s %-22s %8s\n' "scenario" "anchorage" "registry (s3 driver)" "A/reg"
    printf '%-52s %-22s %-22s %8s\n' "3 skopeo push into the store, 10 x 40 MB, MB/s" "$(med 3,anchorage) ($(rng 3,anchorage))" "$(med 3,registry) ($(rng 3,registry))" \
        "$(ratio "$(med 3,anchorage)" "$(med 3,registry)")"
    echo
    echo "targets: second-tier hit >= 0.9x curl from the store: $(awk -v a="$(med 1,anchorage)" -v b="$(med 1,direct)" 'BEGIN {print (a >= 0.9*b ? "met" : "not met")}');" \
         "3x20 wall <= 1.3x 1x20: $(awk -v a="$(med 2wall,cluster)" -v b="$(med 2wall,single)" 'BEGIN {print (a <= 1.3*b ? "met" : "not met")}');" \
         "one upstream fetch: $( [ "$(med 2gets,cluster)" = 1 ] && echo met || echo "not met")"
} | tee "$out"
echo "wrote $out" >&2
