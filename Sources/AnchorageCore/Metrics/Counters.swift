import Foundation
import Synchronization

/// Process-wide metrics, fed by the HTTP layer (one record per response), the
/// upstreams, the fetches and sync; rendered by `/metrics` and `/api/status`.
public final class Counters: Sendable {
    public let digestMismatches = Atomic<Int>(0)
    public let staleServed = Atomic<Int>(0)
    public let upstreamBlobFetches = Atomic<Int>(0)
    public let coalescedFollowers = Atomic<Int>(0)
    /// Blobs the object store (second tier) served into the local tier.
    public let storeTierHits = Atomic<Int>(0)
    /// Blobs streamed from the node that owns their digest ([cluster]).
    public let peerFetches = Atomic<Int>(0)
    /// Blobs this node copied into the object store.
    public let storeTierWrites = Atomic<Int>(0)
    public let corruptBlobsRemoved = Atomic<Int>(0)

    let upstreamRequests = LabeledCounter("anchorage_upstream_requests_total", "Requests to upstreams by outcome class.", labels: ["upstream", "outcome"])
    let syncRuns = LabeledCounter("anchorage_sync_runs_total", "Sync runs by result.", labels: ["result"])
    let rateLimitRemaining = Mutex<[String: Int]>([:])

    struct Mismatch: Sendable {
        let time: Date
        let source: String
        let expected: String
        let actual: String
    }

    struct RepoUse: Sendable {
        var pulls: Int64 = 0
        var bytes: Int64 = 0
        /// Unix seconds of the last manifest or chart pull (0: none seen).
        var lastPull = 0
    }

    struct UpstreamFailure: Sendable {
        let time: Date
        let outcome: String
    }

    /// The last failed request to each upstream, for the console.
    let lastUpstreamFailure = Mutex<[String: UpstreamFailure]>([:])

    private let mismatches = Mutex<[Mismatch]>([])
    /// Everything a response adds, under one lock per shard: each serving
    /// loop takes its own shard's once per response, so loops never contend
    /// for it. Readers merge the shards.
    private let shards = (0..<8).map { _ in ResponseShard() }

    /// The shards' totals merged.
    private var responses: ResponseTotals {
        shards.reduce(into: ResponseTotals()) { all, shard in all.merge(shard.totals.withLock { $0 }) }
    }

    public init() {}

    func recordMismatch(source: String, expected: String, actual: String) {
        digestMismatches.add(1, ordering: .relaxed)
        mismatches.withLock { m in
            m.append(Mismatch(time: Date(), source: source, expected: expected, actual: actual))
            if m.count > 20 { m.removeFirst(m.count - 20) }
        }
    }

    var recentMismatches: [Mismatch] { mismatches.withLock { $0 } }

    func recordUpstream(_ upstream: String, _ outcome: String) {
        upstreamRequests.add([upstream, outcome])
        if outcome != "ok" && outcome != "not_found" {
            lastUpstreamFailure.withLock { $0[upstream] = UpstreamFailure(time: Date(), outcome: outcome) }
        }
    }

    /// One finished response (from the access-log hook).
    func record(_ r: AccessRecord) {
        let route = r.label.route
        let repo = r.cache == .error ? nil : r.label.repository
        let content = r.cache.flatMap { c in route.isContent && c != .error ? c : nil }
        let now = content == nil ? 0 : time(nil)
        shards[r.loop & (shards.count - 1)].totals.withLock { t in
            t.requests.add(RouteStatus(route: route, status: r.status))
            guard let result = content else { return }
            t.byResult[result.index].add(bytes: r.bytes)
            if r.headMicros > 0 { t.ttfb[result.isCached ? 0 : 1].observe(Double(r.headMicros) / 1e6) }
            t.countMinute(now / 60, hit: result.isCached || result == .stale, bytes: r.bytes)
            if let repo { t.use(repo, pull: route == .registryManifest || route == .chartArchive, bytes: r.bytes, at: now) }
        }
    }

    /// (hits, requests) over the last 60 minutes.
    var lastHour: (hits: Int64, total: Int64) {
        minutes.reduce((Int64(0), Int64(0))) { ($0.0 + $1.hits, $0.1 + $1.total) }
    }

    /// The last 60 minutes, oldest first (minutes without content requests are absent).
    var minutes: [MinuteTotals] {
        let now = Int(Date().timeIntervalSince1970 / 60)
        return responses.minutes.filter { $0.minute > now - 60 }
    }

    /// Pulls and bytes by repository (at most 10,000 repositories).
    var repositories: [String: RepoUse] { responses.repositories }

    /// The per-response families in the Prometheus text format.
    func renderResponses(into out: inout String) {
        let t = responses
        PrometheusText.counter(&out, "anchorage_http_requests_total", "HTTP responses by route and status.",
                               t.requests.entries.map { ([("route", $0.key.route.rawValue), ("status", String($0.key.status))], $0.count) })
        let results = CacheResult.allCases.filter { t.byResult[$0.index].requests > 0 }
        var bySource: [String: Int64] = [:]
        for result in results { bySource[result.source, default: 0] += t.byResult[result.index].bytes }
        PrometheusText.counter(&out, "anchorage_http_response_bytes_total", "Response bytes by source of the content.",
                               bySource.map { ([("source", $0.key)], $0.value) })
        PrometheusText.counter(&out, "anchorage_cache_requests_total", "Content requests (blobs, manifests, charts, indexes) by cache result.",
                               results.map { ([("result", $0.rawValue)], t.byResult[$0.index].requests) })
        PrometheusText.counter(&out, "anchorage_cache_response_bytes_total", "Content bytes sent by cache result.",
                               results.map { ([("result", $0.rawValue)], t.byResult[$0.index].bytes) })
        let name = "anchorage_time_to_first_byte_seconds"
        out += "# HELP \(name) Time from request to response head sent, by cache result.\n# TYPE \(name) histogram\n"
        for (i, result) in ["hit", "miss"].enumerated() where t.ttfb[i].count > 0 {
            t.ttfb[i].render(into: &out, name: name, labels: [("result", result)])
        }
    }
}
