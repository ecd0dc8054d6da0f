/// A repository that mirrors one upstream registry (a `[registry]`
/// section): pulls only. Blobs and manifests are served from the store or
/// fetched once from the upstream; tags are listed live; every method that
/// would change content gets `405 UNSUPPORTED`.
final class ProxyRepository: Repository {
    let upstream: RegistryUpstream
    let blobs: BlobService
    let manifests: ManifestService
    let pool: WorkerPool

    init(upstream: RegistryUpstream, blobs: BlobService, manifests: ManifestService, pool: WorkerPool) {
        self.upstream = upstream
        self.blobs = blobs
        self.manifests = manifests
        self.pool = pool
    }

    var name: String { upstream.name }

    func normalize(_ name: RepositoryName) -> RepositoryName {
        guard upstream.isDockerHub, name.components.count == 1, let lib = RepositoryName("library/\(name.value)") else { return name }
        return lib
    }

    func handle(_ route: RegistryRoute, _ request: HTTPRequest, _ responder: HTTPResponder) {
        guard request.method.isRead else {
            return responder.respond(RegistryError.unsupportedMethod(request.method).response)
        }
        switch route {
        case .base:
            responder.respond(RegistryHandler.baseResponse)
        case .uploads:
            responder.respond(RegistryError(.unsupported, .methodNotAllowed, "uploads are not supported: this is a read-only pull-through mirror").response)
        case .blob(let name, let digest):
            blobs.serve(upstream, name, digest, method: request.method, responder)
        case .manifest(let name, let ref):
            // Digests never revalidate: a cached one needs no worker thread.
            // Nor does a tag within its TTL.
            switch ref {
            case .digest(let d):
                if let hit = manifests.cachedByDigest(d) { return responder.respond(hit) }
            case .tag(let t):
                if let hit = manifests.cachedFreshTag(upstream, name, t) { return responder.respond(hit) }
            }
            let accept = request.headers.all("Accept").joined(separator: ", ")
            pool.submit { [manifests, upstream] in
                responder.respond(manifests.get(upstream, name, ref, accept: accept.isEmpty ? nil : accept))
            }
        case .tags(let name):
            let query = ProxyRepository.tagsQuery(request)
            pool.submit { [upstream] in responder.respond(ProxyRepository.tags(upstream, name, query: query)) }
        }
    }

    /// `n` and `last`, re-encoded: only validated values go upstream.
    static func tagsQuery(_ request: HTTPRequest) -> String {
        var q: [String] = []
        if let n = request.queryValue("n"), let v = Int(n), v >= 0 { q.append("n=\(v)") }
        if let last = request.queryValue("last"), let t = Tag(last) { q.append("last=\(t.value)") }
        return q.isEmpty ? "" : "?" + q.joined(separator: "&")
    }

    /// Tags are listed live (not cached): they are what changes.
    static func tags(_ upstream: RegistryUpstream, _ name: RepositoryName, query: String) -> HTTPResponse {
        let sink = CollectingSink(limit: 8 << 20)
        switch upstream.request("GET", path: "\(name.value)/tags/list\(query)", repository: name, accept: "application/json", sink: sink) {
        case .failure(let e):
            return RegistryError.upstream(e, unknown: .nameUnknown, upstream: upstream.name).response
        case .success(let head):
            guard head.status == 200, !sink.overflowed else {
                return RegistryError.upstream(UpstreamError.from(status: head.status, headers: head.headers), unknown: .nameUnknown, upstream: upstream.name).response
            }
            var h = HTTPHeaders()
            h.add("Content-Type", "application/json")
            h.add("Docker-Distribution-API-Version", "registry/2.0")
            if let link = head.headers["Link"], link.hasPrefix("</v2/") { h.add("Link", link) }
            return HTTPResponse(status: .ok, headers: h, body: .bytes(sink.body), cacheStatus: .pass)
        }
    }
}
