import Foundation

/// A repository that mirrors one upstream registry (a `[registry]`
/// section): pulls only. Blobs and manifests are served from the store or
/// fetched once from the upstream; tags are listed live; every method that
/// would change content gets `405 UNSUPPORTED`.
final class ProxyRepository: Repository {
    let upstream: RegistryUpstream
    let blobs: BlobService
    let manifests: ManifestService
    let referrers: ReferrersService
    let pool: WorkerPool

    init(upstream: RegistryUpstream, blobs: BlobService, manifests: ManifestService, referrers: ReferrersService, pool: WorkerPool) {
        self.upstream = upstream
        self.blobs = blobs
        self.manifests = manifests
        self.referrers = referrers
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
            // A GET of an upload's status: no upload exists here.
            responder.respond(RegistryError(.blobUploadUnknown, .notFound, "blob upload unknown: this pull-through mirror takes no uploads").response)
        case .blob(let name, let digest):
            blobs.serve(upstream, name, digest, method: request.method, request, responder)
        case .manifest(let name, let ref):
            // Digests never revalidate: a cached one needs no worker thread.
            // Nor does a tag within its TTL.
            let joined = request.headers.all("Accept").joined(separator: ", ")
            let accept = joined.isEmpty ? nil : joined
            switch ref {
            case .digest(let d):
                if let hit = manifests.cachedByDigest(d) { return responder.respond(hit) }
            case .tag(let t):
                if let hit = manifests.cachedFreshTag(upstream, name, t, accept: accept) { return responder.respond(hit) }
            }
            pool.submit(key: upstream.name) { [manifests, upstream] in
                responder.respond(manifests.get(upstream, name, ref, accept: accept))
            }
        case .referrers(let name, let digest):
            // A media type's characters only; anything else asks for no filter.
            let artifactType = request.queryValue("artifactType").flatMap { t in
                t.utf8.count <= 255 && t.utf8.allSatisfy({ $0 < 128 && (isalnum(Int32($0)) != 0 || "/.+-_".utf8.contains($0)) }) ? t : nil
            }
            pool.submit(key: upstream.name) { [referrers, upstream] in
                responder.respond(referrers.get(upstream, name, digest, artifactType: artifactType))
            }
        case .tags(let name):
            let page = TagPage(request)
            pool.submit(key: upstream.name) { [upstream] in responder.respond(ProxyRepository.tags(upstream, name, page: page)) }
        }
    }

    /// Tags are listed live (not cached): they are what changes. The whole
    /// list is read from the upstream (following its `Link` pages), then
    /// sorted and cut to the client's `n`/`last` here, since upstreams differ
    /// in whether they apply them.
    static func tags(_ upstream: RegistryUpstream, _ name: RepositoryName, page: TagPage) -> HTTPResponse {
        var all: [String] = []
        var path = "\(name.value)/tags/list"
        for _ in 0..<100 {
            let sink = CollectingSink(limit: 8 << 20)
            switch upstream.request("GET", path: path, repository: name, accept: "application/json", sink: sink) {
            case .failure(let e):
                return RegistryError.upstream(e, unknown: .nameUnknown, upstream: upstream.name).response
            case .success(let head):
                guard head.status == 200, !sink.overflowed else {
                    return RegistryError.upstream(UpstreamError.from(status: head.status, headers: head.headers), unknown: .nameUnknown, upstream: upstream.name).response
                }
                let obj = (try? JSONSerialization.jsonObject(with: Data(sink.body))) as? [String: Any]
                all += (obj?["tags"] as? [String]) ?? []
                guard let next = TagPage.nextPath(head.headers["Link"]) else { return page.response(name, tags: all) }
                path = next
            }
        }
        return page.response(name, tags: all)
    }
}

/// A client's `n` and `last` for `tags/list` and `_catalog` (invalid
/// values are ignored), applied to the whole list sorted lexically, with a
/// `Link` to the next page as the distribution spec describes.
struct TagPage: Sendable {
    let n: Int?
    /// A tag or a repository name: both are safe to echo in the `Link`.
    let last: String?
    /// The path and `ns` the client asked with, for the `Link`.
    let path: String
    let ns: String?

    init(_ request: HTTPRequest) {
        n = request.queryValue("n").flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }
        last = request.queryValue("last").flatMap { Tag($0) != nil || RepositoryName($0) != nil ? $0 : nil }
        path = request.path
        ns = request.queryValue("ns").flatMap { RegistryConfig.isValidName($0) ? $0 : nil }
    }

    func response(_ name: RepositoryName, tags: [String]) -> HTTPResponse {
        let (list, h) = page(Array(Set(tags.compactMap { Tag($0)?.value })).sorted())
        let body = "{\"name\":\"\(name.value)\",\"tags\":[\(list.map { "\"\($0)\"" }.joined(separator: ","))]}\n"
        return HTTPResponse(status: .ok, headers: h, body: .text(body), cacheStatus: .pass)
    }

    func catalog(_ repositories: [RepositoryName]) -> HTTPResponse {
        let (list, h) = page(repositories.map(\.value).sorted())
        let body = "{\"repositories\":[\(list.map { "\"\($0)\"" }.joined(separator: ","))]}\n"
        return HTTPResponse(status: .ok, headers: h, body: .text(body), cacheStatus: .pass)
    }

    /// The page of a sorted list after `last`, at most `n` long, and the
    /// headers (with a `Link` when more follow).
    private func page(_ sorted: [String]) -> ([String], HTTPHeaders) {
        var list = sorted
        if let last { list = list.filter { $0 > last } }
        var h = HTTPHeaders()
        h.add("Content-Type", "application/json")
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        if let n, list.count > n {
            list = Array(list.prefix(n))
            if let end = list.last {
                h.add("Link", "<\(path)?n=\(n)&last=\(end)\(ns.map { "&ns=\($0)" } ?? "")>; rel=\"next\"")
            }
        }
        return (list, h)
    }

    /// The upstream's next page (`Link: </v2/…>; rel="next"`) as a path under `/v2/`.
    static func nextPath(_ link: String?) -> String? {
        guard let link, link.contains("rel=\"next\""), let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">"), open < close else { return nil }
        let target = link[link.index(after: open)..<close]
        guard target.hasPrefix("/v2/"), !target.contains("\r"), !target.contains("\n") else { return nil }
        return String(target.dropFirst(4))
    }
}
