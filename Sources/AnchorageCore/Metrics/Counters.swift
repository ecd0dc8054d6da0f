import Foundation
import Synchronization

/// Process-wide metrics, fed by the HTTP layer (one record per response), the
/// upstreams, the ingests and sync; rendered by `/metrics` and `/api/status`.
public final class Counters: Sendable {
    public let digestMismatches = Atomic<Int>(0)
    public let staleServed = Atomic<Int>(0)
    public let upstreamBlobFetches = Atomic<Int>(0)
    public let coalescedFollowers = Atomic<Int>(0)
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
    }

    private let mismatches = Mutex<[Mismatch]>([])
    /// Everything a response adds, under one lock per shard: each serving
    /// loop takes its own shard's once per response (it was seven locks and
    /// label arrays, ~6% of the server's CPU for small cached responses;
    /// then one lock shared by the loops, 3% of it spent contending at
    /// 90k manifest hits/s). Readers merge the shards.
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
    }

    /// One finished response (from the access-log hook).
    func record(_ r: AccessRecord) {
        let route = r.label.route
        let repo = r.cache == .error ? nil : r.label.repository
        let content = r.cache.flatMap { c in route.isContent && c != .error ? c : nil }
        let minute = content == nil ? 0 : time(nil) / 60
        shards[r.loop & (shards.count - 1)].totals.withLock { t in
            t.requests.add(RouteStatus(route: route, status: r.status))
            guard let result = content else { return }
            t.byResult[result.index].add(bytes: r.bytes)
            if r.headMicros > 0 { t.ttfb[result.isCached ? 0 : 1].observe(Double(r.headMicros) / 1e6) }
            t.countMinute(minute, hit: result.isCached || result == .stale)
            if let repo { t.use(repo, pull: route == .registryManifest || route == .chartArchive, bytes: r.bytes) }
        }
    }

    /// (hits, requests) over the last 60 minutes.
    var lastHour: (hits: Int64, total: Int64) {
        let now = Int(Date().timeIntervalSince1970 / 60)
        return responses.minutes.filter { $0.minute > now - 60 }.reduce((Int64(0), Int64(0))) { ($0.0 + $1.hits, $0.1 + $1.total) }
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

struct RouteStatus: Hashable {
    let route: RouteClass
    let status: Int
}

/// Responses by route and status: a short list searched from the entry
/// used last (a shard sees a handful of pairs; hashing the pair for a
/// dictionary was ~1% of a manifest hit's samples).
struct RouteStatusCounts {
    private(set) var entries: [(key: RouteStatus, count: Int64)] = []
    private var last = 0

    mutating func add(_ key: RouteStatus, _ n: Int64 = 1) {
        if last < entries.count, entries[last].key == key {
            entries[last].count += n
        } else if let i = entries.firstIndex(where: { $0.key == key }) {
            last = i
            entries[i].count += n
        } else {
            last = entries.count
            entries.append((key, n))
        }
    }

    mutating func merge(_ o: RouteStatusCounts) {
        for e in o.entries { add(e.key, e.count) }
    }
}

struct ResultTotals {
    var requests: Int64 = 0
    var bytes: Int64 = 0
    mutating func add(bytes n: Int64) { requests += 1; bytes += n }
}

/// The per-response metrics as one value (see `Counters.responses`).
struct ResponseTotals {
    var requests = RouteStatusCounts()
    /// By `CacheResult.index` (an array: no hashing per response).
    var byResult = [ResultTotals](repeating: ResultTotals(), count: CacheResult.allCases.count)
    /// Time to first byte of content responses: [0] cached, [1] not.
    var ttfb = [Histogram](repeating: Histogram(buckets: Histogram.ttfbBuckets), count: 2)
    /// Per-minute (hits, content requests) for the last hour's hit ratio.
    var minutes: [(minute: Int, hits: Int64, total: Int64)] = []
    /// Pulls and bytes by repository, with the repository counted last
    /// kept aside until another comes (a pull's requests name one
    /// repository in a row; hashing its name per response was ~1%).
    var repositories: [String: Counters.RepoUse] {
        var all = settled
        if let recent { Self.add(recent.use, to: recent.repo, in: &all) }
        return all
    }
    private var settled: [String: Counters.RepoUse] = [:]
    private var recent: (repo: String, use: Counters.RepoUse)?

    mutating func countMinute(_ minute: Int, hit: Bool) {
        if let last = minutes.last, last.minute == minute {
            minutes[minutes.count - 1].hits += hit ? 1 : 0
            minutes[minutes.count - 1].total += 1
        } else {
            minutes.removeAll { $0.minute <= minute - 60 }   // only when a minute begins
            minutes.append((minute, hit ? 1 : 0, 1))
        }
    }

    /// Adds another shard's totals.
    mutating func merge(_ o: ResponseTotals) {
        requests.merge(o.requests)
        for i in byResult.indices {
            byResult[i].requests += o.byResult[i].requests
            byResult[i].bytes += o.byResult[i].bytes
        }
        for i in ttfb.indices { ttfb[i].merge(o.ttfb[i]) }
        for m in o.minutes {
            if let i = minutes.firstIndex(where: { $0.minute == m.minute }) {
                minutes[i].hits += m.hits
                minutes[i].total += m.total
            } else {
                minutes.append(m)
            }
        }
        minutes.sort { $0.minute < $1.minute }
        settle()
        for (repo, use) in o.repositories { Self.add(use, to: repo, in: &settled) }
    }

    mutating func use(_ repo: String, pull: Bool, bytes: Int64) {
        if recent?.repo != repo {
            settle()
            recent = (repo, Counters.RepoUse())
        }
        if pull { recent?.use.pulls += 1 }
        recent?.use.bytes += bytes
    }

    private mutating func settle() {
        guard let r = recent else { return }
        Self.add(r.use, to: r.repo, in: &settled)
        recent = nil
    }

    /// At most 10,000 repositories are counted.
    private static func add(_ use: Counters.RepoUse, to repo: String, in table: inout [String: Counters.RepoUse]) {
        guard table[repo] != nil || table.count < 10_000 else { return }
        table[repo, default: Counters.RepoUse()].pulls += use.pulls
        table[repo, default: Counters.RepoUse()].bytes += use.bytes
    }
}

extension CacheResult {
    var index: Int {
        switch self {
        case .hit: 0
        case .miss: 1
        case .coalesced: 2
        case .revalidated: 3
        case .stale: 4
        case .pass: 5
        case .error: 6
        }
    }

    /// The `source` label of the response-bytes family.
    var source: String {
        switch self {
        case .hit, .revalidated: "cache"
        case .stale: "stale"
        default: "upstream"
        }
    }
}

/// One loop's `ResponseTotals` (a class: `Mutex` cannot live in an array).
final class ResponseShard: Sendable {
    let totals = Mutex(ResponseTotals())
}
