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

    let requests = LabeledCounter("anchorage_http_requests_total", "HTTP responses by route and status.", labels: ["route", "status"])
    let bytesBySource = LabeledCounter("anchorage_http_response_bytes_total", "Response bytes by source of the content.", labels: ["source"])
    let cacheRequests = LabeledCounter("anchorage_cache_requests_total", "Content requests (blobs, manifests, charts, indexes) by cache result.", labels: ["result"])
    let cacheBytes = LabeledCounter("anchorage_cache_response_bytes_total", "Content bytes sent by cache result.", labels: ["result"])
    let upstreamRequests = LabeledCounter("anchorage_upstream_requests_total", "Requests to upstreams by outcome class.", labels: ["upstream", "outcome"])
    let syncRuns = LabeledCounter("anchorage_sync_runs_total", "Sync runs by result.", labels: ["result"])
    let ttfb = LabeledHistogram("anchorage_time_to_first_byte_seconds", "Time from request to response head sent, by cache result.",
                                labels: ["result"], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
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
    /// Per-minute (hits, content requests) for the last hour's hit ratio.
    private let minutes = Mutex<[(minute: Int, hits: Int64, total: Int64)]>([])
    let repositories = Mutex<[String: RepoUse]>([:])

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
        let route = RouteClass.of(r.path)
        requests.add([route.rawValue, String(r.status)])
        guard let cache = r.cache, cache != "-", cache != "ERROR", route.isContent else { return }
        let result = cache.lowercased()
        let source = switch result {
        case "hit", "revalidated": "cache"
        case "stale": "stale"
        default: "upstream"
        }
        bytesBySource.add([source], r.bytes)
        cacheRequests.add([result])
        cacheBytes.add([result], r.bytes)
        if r.headMicros > 0 { ttfb.observe([result == "hit" || result == "revalidated" ? "hit" : "miss"], Double(r.headMicros) / 1e6) }
        let minute = Int(Date().timeIntervalSince1970 / 60)
        let hit: Int64 = source == "upstream" ? 0 : 1
        minutes.withLock { m in
            if let last = m.last, last.minute == minute {
                m[m.count - 1].hits += hit
                m[m.count - 1].total += 1
            } else {
                m.append((minute, hit, 1))
            }
            m.removeAll { $0.minute <= minute - 60 }
        }
        if let repo = route.repository(r.path) {
            repositories.withLock { m in
                guard m[repo] != nil || m.count < 10_000 else { return }
                if route == .registryManifest || route == .chartArchive { m[repo, default: RepoUse()].pulls += 1 }
                m[repo, default: RepoUse()].bytes += r.bytes
            }
        }
    }

    /// (hits, requests) over the last 60 minutes.
    var lastHour: (hits: Int64, total: Int64) {
        let now = Int(Date().timeIntervalSince1970 / 60)
        return minutes.withLock { m in
            m.filter { $0.minute > now - 60 }.reduce((Int64(0), Int64(0))) { ($0.0 + $1.hits, $0.1 + $1.total) }
        }
    }
}

/// What the HTTP layer reports per response.
public struct AccessRecord: Sendable {
    public let method: String
    public let path: String
    public let status: Int
    public let bytes: Int64
    public let micros: UInt64
    public let headMicros: UInt64
    public let cache: String?
}

/// Routes as metrics label them.
enum RouteClass: String {
    case registryBase = "registry_base", registryManifest = "registry_manifest", registryBlob = "registry_blob", registryTags = "registry_tags"
    case chartIndex = "chart_index", chartArchive = "chart_archive", chartProvenance = "chart_prov"
    case health = "health", metrics = "metrics", status = "status", other = "other"

    static func of(_ path: String) -> RouteClass {
        if path == "/v2" || path == "/v2/" { return .registryBase }
        if path.hasPrefix("/v2/") {
            if path.containsBytes("/blobs/") { return .registryBlob }
            if path.containsBytes("/manifests/") { return .registryManifest }
            if path.hasSuffix("/tags/list") { return .registryTags }
            return .other
        }
        if path.hasPrefix("/charts/") {
            if path.hasSuffix("/index.yaml") { return .chartIndex }
            if path.hasSuffix(".tgz.prov") { return .chartProvenance }
            if path.hasSuffix(".tgz") { return .chartArchive }
            return .other
        }
        switch path {
        case "/healthz", "/readyz": return .health
        case "/metrics": return .metrics
        case "/": return .status
        default: return path.hasPrefix("/api/") ? .status : .other
        }
    }

    var isContent: Bool {
        switch self {
        case .registryManifest, .registryBlob, .chartIndex, .chartArchive, .chartProvenance: true
        default: false
        }
    }

    /// "name" for /v2/name/..., "charts/repo/chart" for chart archives.
    func repository(_ path: String) -> String? {
        switch self {
        case .registryManifest, .registryBlob:
            let rest = path.dropFirst(4)
            guard let r = self == .registryBlob ? rest.lastRange(ofBytes: "/blobs/") : rest.lastRange(ofBytes: "/manifests/") else { return nil }
            return String(rest[..<r.lowerBound])
        case .chartArchive:
            let parts = path.split(separator: "/")
            guard parts.count == 3 else { return nil }
            let file = parts[2].dropLast(4)
            // CHART-VERSION: the chart is what precedes the last "-<digit>".
            var chart = file
            if let r = file.range(of: #"-[0-9v][^-]*(-.*)?$"#, options: .regularExpression) { chart = file[..<r.lowerBound] }
            return "charts/\(parts[1])/\(chart)"
        default:
            return nil
        }
    }
}
