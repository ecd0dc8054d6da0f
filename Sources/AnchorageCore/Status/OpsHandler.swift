import Foundation
import Glibc
import Synchronization

/// Operator endpoints: `/healthz` (alive), `/readyz` (cache writable, config
/// loaded), `/metrics` (Prometheus text); `/api/status` is built here too.
final class OpsHandler: Sendable {
    let mirror: Mirror
    let sync: SyncRunner
    let tls: TLSContext?
    /// Open connections, from the server (set once it exists).
    let connections = Mutex<(@Sendable () -> Int)?>(nil)

    init(mirror: Mirror, sync: SyncRunner, tls: TLSContext?) {
        self.mirror = mirror
        self.sync = sync
        self.tls = tls
    }

    private var openConnections: Int { connections.withLock { $0 }?() ?? 0 }

    /// What `/api/status` shows.
    func status() -> [String: Any] {
        var s = StatusReport.build(mirror, openConnections: openConnections, sync: sync)
        s["tls_handshakes_in_progress"] = tls?.handshakesInProgress ?? 0
        return s
    }

    /// Answers the paths it owns; false for anything else.
    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) -> Bool {
        let path = request.path
        guard path == "/healthz" || path == "/readyz" || path == "/metrics" else { return false }
        let responder = responder.labeled(RouteLabel(path == "/metrics" ? .metrics : .health))
        guard request.method.isRead else {
            var r = HTTPResponse.text(.methodNotAllowed, "method not allowed")
            r.headers.add("Allow", "GET, HEAD")
            responder.respond(r)
            return true
        }
        switch path {
        case "/healthz":
            responder.respond(.text(.ok, "ok"))
        case "/readyz":
            let (ready, why) = readiness()
            // A node whose object store is down still serves its local tier
            // and the upstreams: it stays ready, and says what is missing.
            let degraded = mirror.storeTier?.problem.map { "; object store \(mirror.config.storage.s3?.endpoint ?? "") down: \($0)" } ?? ""
            responder.respond(.text(ready ? .ok : .serviceUnavailable, (ready ? "ready" : "not ready: \(why)") + degraded))
        case "/metrics":
            var h = HTTPHeaders()
            h.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            responder.respond(HTTPResponse(status: .ok, headers: h, body: .text(metrics())))
        default:
            responder.respond(.text(.notFound, "not found"))
        }
        return true
    }

    private func readiness() -> (Bool, String) {
        let probe = mirror.layout.readinessProbe
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return (false, "cache directory not writable: \(String(cString: strerror(errno)))") }
        let ok = write(fd, "x", 1) == 1
        close(fd)
        unlink(probe)
        return ok ? (true, "") : (false, "cannot write to the cache directory")
    }

    func metrics() -> String {
        let c = mirror.counters
        let idx = mirror.index
        var out = ""
        c.renderResponses(into: &out)
        c.upstreamRequests.render(into: &out)
        c.syncRuns.render(into: &out)
        func counter(_ name: String, _ help: String, _ v: Int) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(v)\n"
        }
        counter("anchorage_digest_mismatches_total", "Upstream content discarded because its digest did not match.", c.digestMismatches.load(ordering: .relaxed))
        counter("anchorage_stale_responses_total", "Manifests served stale because the upstream failed.", c.staleServed.load(ordering: .relaxed))
        counter("anchorage_coalesced_followers_total", "Requests that followed an in-flight fetch instead of starting one.", c.coalescedFollowers.load(ordering: .relaxed))
        counter("anchorage_upstream_blob_fetches_total", "Blob and chart archive transfers started upstream.", c.upstreamBlobFetches.load(ordering: .relaxed))
        if let tier = mirror.storeTier {
            PrometheusText.gauge(&out, "anchorage_store_up", "1 when the object store's last answer was good, 0 when it is down.", [([:], tier.problem == nil ? 1 : 0)])
        }
        counter("anchorage_store_tier_hits_total", "Blobs the object store served into the local tier.", c.storeTierHits.load(ordering: .relaxed))
        counter("anchorage_peer_fetches_total", "Blobs streamed from the cluster node that owns their digest.", c.peerFetches.load(ordering: .relaxed))
        counter("anchorage_store_tier_writes_total", "Blobs this node copied into the object store.", c.storeTierWrites.load(ordering: .relaxed))
        counter("anchorage_corrupt_blobs_removed_total", "Cached blobs whose content no longer matched their digest (scrubber).", c.corruptBlobsRemoved.load(ordering: .relaxed))
        counter("anchorage_evictions_total", "Cache entries evicted by LRU.", idx.evictions.load(ordering: .relaxed))
        counter("anchorage_evicted_bytes_total", "Bytes evicted by LRU.", idx.evictedBytes.load(ordering: .relaxed))
        PrometheusText.gauge(&out, "anchorage_cache_bytes", "Bytes held by the cache.", [([:], Double(idx.totalBytes))])
        PrometheusText.gauge(&out, "anchorage_cache_max_bytes", "The cache budget ([cache] max_size).", [([:], Double(idx.maxSize))])
        PrometheusText.gauge(&out, "anchorage_cache_entries", "Blobs held by the cache.", [([:], Double(idx.entryCount))])
        PrometheusText.gauge(&out, "anchorage_cache_pinned_bytes", "Bytes pinned by sync rules.", [([:], Double(idx.pinnedBytes))])
        PrometheusText.gauge(&out, "anchorage_inflight_fetches", "Upstream transfers in progress.", [([:], Double(mirror.blobs.inFlight.count))])
        PrometheusText.gauge(&out, "anchorage_open_connections", "Open client connections.", [([:], Double(openConnections))])
        if let tls {
            PrometheusText.gauge(&out, "anchorage_tls_handshakes_in_progress", "TLS handshakes begun and not finished (at most 1024).", [([:], Double(tls.handshakesInProgress))])
        }
        PrometheusText.gauge(&out, "anchorage_upstream_circuit_open", "1 while an upstream's breaker is open (served from cache only).",
                             mirror.upstreams.values.sorted { $0.name < $1.name }.map { (["upstream": $0.name], $0.breaker.isOpen ? 1 : 0) })
        let rl = c.rateLimitRemaining.withLock { $0 }
        PrometheusText.gauge(&out, "anchorage_upstream_rate_limit_remaining", "Pulls left in the upstream's window (RateLimit-Remaining).",
                             rl.sorted { $0.key < $1.key }.map { (["upstream": $0.key], Double($0.value)) })
        if let last = sync.last {
            PrometheusText.gauge(&out, "anchorage_sync_last_run_timestamp_seconds", "When the last scheduled sync finished.", [([:], last.finished.timeIntervalSince1970.rounded())])
            PrometheusText.gauge(&out, "anchorage_sync_last_run_success", "1 if the last scheduled sync succeeded.", [([:], last.ok ? 1 : 0)])
        }
        return out
    }
}
