import Foundation
import Synchronization

/// `GET /v2/<name>/referrers/<digest>`: the upstream's list of what refers
/// to a manifest (signatures, SBOMs), forwarded. The whole list is fetched
/// and kept in memory for the tag TTL, served from there meanwhile and
/// through an outage; `artifactType` is applied here on it. An upstream
/// without a referrers API answers 404, and so does the mirror.
final class ReferrersService: Sendable {
    private struct Entry {
        let body: [UInt8]
        let fetchedAt: Int64
    }

    private let cache = Mutex<[String: Entry]>([:])
    let defaultTTL: Int64
    static let maxEntries = 10_000
    static let maxBytes = 4 << 20
    static let indexType = "application/vnd.oci.image.index.v1+json"

    init(defaultTTLMillis: Int64) { defaultTTL = defaultTTLMillis }

    /// The list last fetched for a manifest, if any (never asks upstream).
    func remembered(upstream: String, _ name: RepositoryName, _ d: Digest) -> [UInt8]? {
        cache.withLock { $0["\(upstream)/\(name.value)@\(d)"]?.body }
    }

    /// Blocking: run on a worker.
    func get(_ upstream: RegistryUpstream, _ name: RepositoryName, _ d: Digest, artifactType: String?) -> HTTPResponse {
        let key = "\(upstream.name)/\(name.value)@\(d)"
        let now = CacheIndex.nowMillis()
        let ttl = upstream.config.manifestTTL.map { $0.milliseconds } ?? defaultTTL
        let cached = cache.withLock { $0[key] }
        if let cached, now - cached.fetchedAt < ttl {
            return ReferrersService.response(cached.body, artifactType: artifactType, cache: .hit)
        }
        let sink = CollectingSink(limit: ReferrersService.maxBytes)
        let result = upstream.request("GET", path: "\(name.value)/referrers/\(d)", repository: name, accept: ReferrersService.indexType, sink: sink)
        switch result {
        case .success(let head) where head.status == 200 && !sink.overflowed:
            cache.withLock { c in
                if c.count >= ReferrersService.maxEntries { c.removeAll() }
                c[key] = Entry(body: sink.body, fetchedAt: now)
            }
            return ReferrersService.response(sink.body, artifactType: artifactType, cache: .miss)
        case .success(let head):
            let e = UpstreamError.from(status: head.status, headers: head.headers)
            if e.isOutage, let cached { return ReferrersService.response(cached.body, artifactType: artifactType, cache: .stale) }
            if e == .notFound {
                return RegistryError(.unsupported, .notFound, "the upstream registry answers no referrers for this manifest", detail: upstream.name).response
            }
            return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
        case .failure(let e):
            if e.isOutage, let cached { return ReferrersService.response(cached.body, artifactType: artifactType, cache: .stale) }
            return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
        }
    }

    /// The list, narrowed to `artifactType` when one is asked for (and then
    /// says so with `OCI-Filters-Applied`).
    static func response(_ body: [UInt8], artifactType: String?, cache: CacheResult) -> HTTPResponse {
        var h = HTTPHeaders()
        h.add("Content-Type", indexType)
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        var out = body
        if let artifactType, var index = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] {
            let manifests = index["manifests"] as? [[String: Any]] ?? []
            index["manifests"] = manifests.filter { $0["artifactType"] as? String == artifactType }
            if let data = try? JSONSerialization.data(withJSONObject: index, options: [.sortedKeys]) {
                out = [UInt8](data)
                h.add("OCI-Filters-Applied", "artifactType")
            }
        }
        return HTTPResponse(status: .ok, headers: h, body: .bytes(out), cacheStatus: cache)
    }
}
