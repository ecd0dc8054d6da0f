/// Where a response's content came from, for the access log's `cache=` field
/// and the cache metrics.
public enum CacheResult: String, Sendable, CaseIterable {
    case hit, miss, coalesced, revalidated, stale, pass
    case error = "ERROR"

    /// Served from what the cache already held (possibly after a cheap check).
    var isCached: Bool { self == .hit || self == .revalidated }

    /// The `X-Anchorage-Cache` header's value.
    var headerValue: String {
        switch self {
        case .hit: "HIT"
        case .miss: "MISS"
        case .coalesced: "COALESCED"
        case .revalidated: "REVALIDATED"
        case .stale: "STALE"
        case .pass: "PASS"
        case .error: "ERROR"
        }
    }
}

/// Routes as the metrics label them.
public enum RouteClass: String, Sendable {
    case registryBase = "registry_base", registryManifest = "registry_manifest", registryBlob = "registry_blob", registryTags = "registry_tags"
    case chartIndex = "chart_index", chartArchive = "chart_archive", chartProvenance = "chart_prov"
    case health = "health", metrics = "metrics", status = "status", other = "other"

    /// Content a cache serves (counted by cache result and repository).
    var isContent: Bool {
        switch self {
        case .registryManifest, .registryBlob, .chartIndex, .chartArchive, .chartProvenance: true
        default: false
        }
    }
}

/// What a response was, as the handler that resolved its request says:
/// the route and, for content, the repository it belongs to. Stamped on
/// the responder once (`HTTPResponder.labeled`), so the metrics never parse
/// the path again.
public struct RouteLabel: Sendable, Equatable {
    public let route: RouteClass
    public let repository: String?

    public init(_ route: RouteClass, repository: String? = nil) {
        self.route = route
        self.repository = repository
    }

    static let other = RouteLabel(.other)
}

/// What the HTTP layer reports per finished response.
public struct AccessRecord: Sendable {
    public let method: String
    public let label: RouteLabel
    public let status: Int
    public let bytes: Int64
    public let micros: UInt64
    public let headMicros: UInt64
    public let cache: CacheResult?
    /// The serving loop's index (picks the metrics shard).
    public var loop = 0
}
