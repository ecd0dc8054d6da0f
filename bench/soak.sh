#!/usr/bin/env bash
# Soak (not a CI test): CLIENTS concurrent clients (default 200) pull a mix
# of cached and uncached images for DURATION seconds (default 600) while the
# upstream docker-registry is stopped and restarted every FLAP seconds
# (default 30). Prints requests served, errors by class, RSS and open file
# descriptors at start and end, and the result of `anchorage verify`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
apt_install curl python3 docker-registry skopeo libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config
. bench/lib/common.sh
DURATION=${DURATION:-600}; FLAP=${FLAP:-30}; CLIENTS=${CLIENTS:-200}; IMAGES=${IMAGES:-24}
swift build -c release --product anchorage >&2
BENCH_TMP=$(mktemp -d /tmp/anchorage-soak.XXXXXX)
UP=$(free_port); AP=$(free_port)
start_registry "$BENCH_TMP/upstream" "$UP"
REG_PID=${BENCH_PIDS[-1]}
echo "pushing $IMAGES images…" >&2
for i in $(seq 1 "$IMAGES"); do push_image "127.0.0.1:$UP" "soak/img$i:v1" 2000000 3 "$BENCH_TMP" > /dev/null; done
PID=$(start_anchorage "$AP" "$BENCH_TMP/cache" "http://127.0.0.1:$UP" "$BENCH_TMP/anchorage.log")
# Warm half of the images so the mix has hits and misses.
for i in $(seq 1 $((IMAGES / 2))); do skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$AP/soak/img$i:v1" "dir:$BENCH_TMP/warm$i" >/dev/null; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
rss0=$(rss); fds0=$(fds)

# The upstream flaps: down for FLAP seconds, up for FLAP seconds, …
(
    while true; do
        sleep "$FLAP"; kill "$(pgrep -f "docker-registry serve $BENCH_TMP/upstream")" 2>/dev/null || true
        sleep "$FLAP"; docker-registry serve "$BENCH_TMP/upstream/config.yml" >> "$BENCH_TMP/upstream/registry.log" 2>&1 &
    done
) & FLAPPER=$!
track $FLAPPER

python3 - "$AP" "$DURATION" "$CLIENTS" "$IMAGES" > "$BENCH_TMP/load.json" <<'PY'
import http.client, json, random, sys, threading, time, collections
port, duration, clients, images = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
stop = time.time() + duration
counts = collections.Counter()
lock = threading.Lock()
accept = "application/vnd.oci.image.manifest.v1+json"
def worker(seed):
    rng = random.Random(seed)
    conn = None
    while time.time() < stop:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            name = f"soak/img{rng.randint(1, images)}"
            conn.request("GET", f"/v2/{name}/manifests/v1", headers={"Accept": accept})
            r = conn.getresponse(); body = r.read()
            with lock: counts[f"manifest {r.status}"] += 1
            if r.status != 200:
                continue
            for layer in json.loads(body)["layers"]:
                conn.request("GET", f"/v2/{name}/blobs/{layer['digest']}")
                r = conn.getresponse(); data = r.read()
                ok = r.status == 200 and len(data) == layer["size"]
                with lock: counts[f"blob {r.status}{'' if ok or r.status != 200 else ' short'}"] += 1
        except Exception as e:
            with lock: counts[f"error {type(e).__name__}"] += 1
            conn = None
threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(counts))
PY
kill "$FLAPPER" 2>/dev/null || true
sleep 2
rss1=$(rss); fds1=$(fds)
# What the remaining descriptors are: idle upstream connections kept by the
# libcurl handle pool (bounded) versus anything else.
up_conns=$(ss -tn "( dport = :$UP )" 2>/dev/null | tail -n +2 | awk '$1 != "TIME-WAIT"' | wc -l)
up_states=$(ss -tn "( dport = :$UP )" 2>/dev/null | tail -n +2 | awk '$1 != "TIME-WAIT" {print $1}' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
client_conns=$(ss -tn state established "( sport = :$AP )" 2>/dev/null | tail -n +2 | wc -l)
fd_kinds=$(ls -l "/proc/$PID/fd" | awk 'NR>1 {print $NF}' | sed -E 's/[0-9]+/N/g; s#^/.*/(cache|tmp)/.*#\1-file#' | sort | uniq -c | awk '{printf "%s %s; ", $1, $2}')
kill "$PID"; wait "$PID" 2>/dev/null || true
verify=$(.build/release/anchorage verify --config "$BENCH_TMP/cache.conf" | tail -1)
out="bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "# soak: $CLIENTS clients, ${DURATION}s, upstream flapping every ${FLAP}s, $IMAGES images (half warm), $(nproc) cores"
    python3 -c "import json,sys; c=json.load(open(sys.argv[1])); [print(f'{k:<40} {v}') for k,v in sorted(c.items())]; print(f'{\"requests total\":<40} {sum(c.values())}')" "$BENCH_TMP/load.json"
    printf '%-40s %s -> %s KiB\n' "RSS start -> end" "$rss0" "$rss1"
    printf '%-40s %s -> %s\n' "open fds start -> end (load stopped)" "$fds0" "$fds1"
    printf '%-40s %s to the upstream (%s), %s from clients\n' "  sockets at the end" "$up_conns" "$up_states" "$client_conns"
    printf '%-40s %s\n' "  descriptors at the end" "$fd_kinds"
    printf '%-40s %s\n' "anchorage verify" "$verify"
} | tee "$out"
