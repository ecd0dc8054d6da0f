import Synchronization

struct RouteStatus: Hashable {
    let route: RouteClass
    let status: Int
}

/// Responses by route and status: a short list searched from the entry
/// used last (a shard sees a handful of pairs, so this beats hashing the
/// pair for every response).
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

struct MinuteTotals {
    let minute: Int
    var hits: Int64 = 0
    var total: Int64 = 0
    var bytes: Int64 = 0

    mutating func add(hit: Bool, bytes n: Int64) {
        hits += hit ? 1 : 0
        total += 1
        bytes += n
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
    /// Per-minute hits, content requests and content bytes for the last hour.
    var minutes: [MinuteTotals] = []
    /// Pulls and bytes by repository, with the repository counted last
    /// kept aside until another comes (a pull's requests name one
    /// repository in a row, so its name is not hashed per response).
    var repositories: [String: Counters.RepoUse] {
        var all = settled
        if let recent { Self.add(recent.use, to: recent.repo, in: &all) }
        return all
    }
    private var settled: [String: Counters.RepoUse] = [:]
    private var recent: (repo: String, use: Counters.RepoUse)?

    mutating func countMinute(_ minute: Int, hit: Bool, bytes: Int64) {
        if minutes.last?.minute != minute {
            minutes.removeAll { $0.minute <= minute - 60 }   // only when a minute begins
            minutes.append(MinuteTotals(minute: minute))
        }
        minutes[minutes.count - 1].add(hit: hit, bytes: bytes)
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
                minutes[i].bytes += m.bytes
            } else {
                minutes.append(m)
            }
        }
        minutes.sort { $0.minute < $1.minute }
        settle()
        for (repo, use) in o.repositories { Self.add(use, to: repo, in: &settled) }
    }

    mutating func use(_ repo: String, pull: Bool, bytes: Int64, at second: Int) {
        if recent?.repo != repo {
            settle()
            recent = (repo, Counters.RepoUse())
        }
        if pull {
            recent?.use.pulls += 1
            recent?.use.lastPull = second
        }
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
        table[repo, default: Counters.RepoUse()].lastPull = max(table[repo]?.lastPull ?? 0, use.lastPull)
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
