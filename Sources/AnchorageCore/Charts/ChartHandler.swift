import Foundation

/// The chart protocol: `/charts/NAME/index.yaml`, `/charts/NAME/FILE.tgz`
/// and `/charts/NAME/FILE.tgz.prov` for each `[charts "NAME"]` repository;
/// a hosted one (`hosted = true`) also takes ChartMuseum's API.
final class ChartHandler: Sendable {
    let repositories: [String: ChartRepository]
    let hosted: [String: ChartMuseumAPI]
    let blobs: BlobService
    let store: FileBlobStore
    let registries: [String: RegistryUpstream]
    let pool: WorkerPool
    let counters: Counters

    init(repositories: [String: ChartRepository], hosted: [HostedChartRepository] = [], blobs: BlobService, store: FileBlobStore,
         registries: [String: RegistryUpstream], pool: WorkerPool, counters: Counters) {
        self.repositories = repositories
        self.hosted = Dictionary(uniqueKeysWithValues: hosted.map { ($0.name, ChartMuseumAPI(repository: $0)) })
        self.blobs = blobs
        self.store = store
        self.registries = registries
        self.pool = pool
        self.counters = counters
    }

    private static func error(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        var r = HTTPResponse.text(status, message)
        r.cacheStatus = .error
        return r
    }

    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let responder = responder.labeled(ChartHandler.label(request.path))
        let components = request.path.split(separator: "/", omittingEmptySubsequences: false)
        if components.count >= 4, components[1] == "charts", let api = hosted[String(components[2])] {
            // Every component passes the same alphabet as chart names.
            let rest = Array(components[3...])
            guard rest.allSatisfy({ ChartIndex.isSafeComponent(String($0)) }) else {
                return responder.respond(ChartMuseumAPI.error(.notFound, "not found"))
            }
            return api.handle(rest, request, responder)
        }
        guard request.method.isRead else {
            var r = ChartHandler.error(.methodNotAllowed, "read-only chart mirror")
            r.headers.add("Allow", "GET, HEAD")
            return responder.respond(r)
        }
        // /charts/NAME/FILE — no deeper paths, nothing unvalidated.
        let parts = components
        guard parts.count == 4, parts[0].isEmpty, parts[1] == "charts", let repo = repositories[String(parts[2])] else {
            return responder.respond(ChartHandler.error(.notFound, "unknown chart repository (configured: \((Array(repositories.keys) + Array(hosted.keys)).sorted().joined(separator: ", ")))"))
        }
        let file = String(parts[3])
        if file == "index.yaml" {
            return serveIndex(repo, request, responder)
        }
        if file.hasSuffix(".tgz.prov") {
            let chart = String(file.dropLast(5))
            guard ChartIndex.isSafeComponent(chart) else { return responder.respond(ChartHandler.error(.badRequest, "invalid file name")) }
            return repo.withIndex { [self] snap, err in serveProvenance(repo, chart, snap, err, responder) }
        }
        guard file.hasSuffix(".tgz"), ChartIndex.isSafeComponent(file) else {
            return responder.respond(ChartHandler.error(.notFound, "not found"))
        }
        repo.withIndex { [self] snap, err in serveArchive(repo, file, snap, err, responder) }
    }

    /// The metrics' name for a chart path: archives are counted under
    /// `charts/REPO/CHART`.
    static func label(_ path: String) -> RouteLabel {
        let parts = path.split(separator: "/")
        guard parts.count == 3 else { return .other }
        let file = parts[2]
        if file == "index.yaml" { return RouteLabel(.chartIndex) }
        if file.hasSuffix(".tgz.prov") { return RouteLabel(.chartProvenance) }
        guard file.hasSuffix(".tgz") else { return .other }
        // CHART-VERSION: the chart is what precedes the last "-<digit>".
        var chart = file.dropLast(4)
        if let r = chart.range(of: #"-[0-9v][^-]*(-.*)?$"#, options: .regularExpression) { chart = chart[..<r.lowerBound] }
        return RouteLabel(.chartArchive, repository: "charts/\(parts[1])/\(chart)")
    }

    private func serveIndex(_ repo: ChartRepository, _ request: HTTPRequest, _ responder: HTTPResponder) {
        let gzipOK = Gzip.accepted(request.headers["Accept-Encoding"])
        repo.withIndex { snap, err in
            guard let snap else {
                return responder.respond(ChartHandler.error(.badGateway, "chart repository \(repo.name): \(err ?? "unavailable")"))
            }
            var h = HTTPHeaders()
            h.add("Content-Type", snap.contentType)
            h.add("Vary", "Accept-Encoding")
            h.add("Cache-Control", "no-cache")
            if gzipOK, let gz = snap.gzip {
                h.add("Content-Encoding", "gzip")
                h.add("ETag", String(snap.etag.dropLast()) + "-gz\"")
                responder.respond(HTTPResponse(status: .ok, headers: h, body: .bytes(gz), cacheStatus: .hit))
            } else {
                h.add("ETag", snap.etag)
                responder.respond(HTTPResponse(status: .ok, headers: h, body: .bytes(snap.body), cacheStatus: .hit))
            }
        }
    }

    static func archiveHeaders(_ d: Digest?) -> HTTPHeaders {
        var h = HTTPHeaders()
        // Never Content-Encoding: the .tgz is the representation itself.
        h.add("Content-Type", "application/gzip")
        if let d {
            h.add("ETag", d.etag)
            h.add("Cache-Control", "max-age=31536000, immutable")
        }
        return h
    }

    private func serveArchive(_ repo: ChartRepository, _ file: String, _ snap: ChartRepository.Snapshot?, _ err: String?, _ responder: HTTPResponder) {
        guard let snap else { return responder.respond(ChartHandler.error(.badGateway, "chart repository \(repo.name): \(err ?? "unavailable")")) }
        guard let entry = snap.files[file] else { return responder.respond(ChartHandler.error(.notFound, "\(file) is not in the index of \(repo.name)")) }
        let mismatch: @Sendable (UpstreamError) -> HTTPResponse = { e in
            switch e {
            case .notFound: ChartHandler.error(.notFound, "\(file): not found upstream")
            case .digestMismatch: ChartHandler.error(.badGateway, "\(file): upstream archive does not match the index digest")
            case .tooManyFetches:
                {
                    var r = ChartHandler.error(.tooManyRequests, "\(file): \(e)")
                    r.headers.add("Retry-After", "1")
                    return r
                }()
            default: ChartHandler.error(e.isOutage ? .serviceUnavailable : .badGateway, "\(file): \(e)")
            }
        }
        if let d = entry.digest {
            if entry.url.hasPrefix("oci://") {
                return serveOCIChart(entry.url, d, repo, responder, error: mismatch)
            }
            let headers = repo.headers(for: entry.url)
            blobs.serveOrFetch(d, source: "charts/\(repo.name)", headers: ChartHandler.archiveHeaders(d), responder, error: mismatch) { shared in
                repo.client.perform(method: "GET", url: entry.url, headers: headers, options: repo.options, sink: shared)
            }
            return
        }
        // No digest in the index: nothing to check against. Fetched whole,
        // cached under its computed digest, with a warning.
        if let d = repo.computedDigests.withLock({ $0[file] }), let f = store.open(d) {
            return responder.respond(HTTPResponse(status: .ok, headers: ChartHandler.archiveHeaders(d), body: HTTPBody(f), cacheStatus: .hit))
        }
        pool.submit(key: "charts/\(repo.name)") { [store] in
            let sink = CollectingSink(limit: 512 << 20)
            switch repo.client.perform(method: "GET", url: entry.url, headers: repo.headers(for: entry.url), options: repo.options, sink: sink) {
            case .failure(let e):
                responder.respond(mismatch(e))
            case .success(let head):
                guard head.status == 200, !sink.overflowed else {
                    return responder.respond(mismatch(UpstreamError.from(status: head.status, headers: head.headers)))
                }
                let d = Hasher.digest(sink.body)
                Log.warn("chart without digest in the index: passed through unverified", ["repository": repo.name, "file": file, "computed": d.description])
                if store.put(sink.body, digest: d) { repo.computedDigests.withLock { $0[file] = d } }
                responder.respond(HTTPResponse(status: .ok, headers: ChartHandler.archiveHeaders(d), body: .bytes(sink.body), cacheStatus: .miss))
            }
        }
    }

    /// `oci://HOST/REPO/CHART:VERSION`: the chart layer of that manifest,
    /// through the registry side (HOST must be a configured [registry]).
    private func serveOCIChart(_ url: String, _ d: Digest, _ repo: ChartRepository, _ responder: HTTPResponder, error: @escaping @Sendable (UpstreamError) -> HTTPResponse) {
        let rest = url.dropFirst("oci://".count)
        guard let slash = rest.firstIndex(of: "/"), let upstream = registries[String(rest[..<slash])] else {
            return responder.respond(ChartHandler.error(.badGateway, "\(url): no [registry] section for its host"))
        }
        let path = rest[rest.index(after: slash)...]
        let nameText = path.split(separator: ":", maxSplits: 1).first ?? path
        guard let name = RepositoryName(nameText) else { return responder.respond(ChartHandler.error(.badGateway, "\(url): invalid repository")) }
        blobs.serveOrFetch(d, source: "charts/\(repo.name)", headers: ChartHandler.archiveHeaders(d), responder, error: error) { shared in
            // The chart archive is the layer whose digest the index names.
            upstream.request("GET", path: "\(name.value)/blobs/\(d)", repository: name, accept: nil, sink: shared)
        }
    }

    private func serveProvenance(_ repo: ChartRepository, _ chart: String, _ snap: ChartRepository.Snapshot?, _ err: String?, _ responder: HTTPResponder) {
        guard let snap, let entry = snap.files[chart], !entry.url.hasPrefix("oci://") else {
            return responder.respond(ChartHandler.error(.notFound, "\(chart).prov: not in the index"))
        }
        if let stored = repo.storedProvenance(chart) {
            return responder.respond(HTTPResponse(status: .ok, headers: HTTPHeaders([("Content-Type", "application/pgp-signature")]), body: .bytes(stored), cacheStatus: .hit))
        }
        pool.submit(key: "charts/\(repo.name)") {
            let url = entry.url + ".prov"
            let sink = CollectingSink(limit: 1 << 20)
            switch repo.client.perform(method: "GET", url: url, headers: repo.headers(for: url), options: repo.options, sink: sink) {
            case .success(let head) where head.status == 200 && !sink.overflowed:
                repo.storeProvenance(chart, sink.body)
                responder.respond(HTTPResponse(status: .ok, headers: HTTPHeaders([("Content-Type", "application/pgp-signature")]), body: .bytes(sink.body), cacheStatus: .miss))
            case .success(let head):
                responder.respond(ChartHandler.error(head.status == 404 ? .notFound : .badGateway, "\(chart).prov: upstream answered \(head.status)"))
            case .failure(let e):
                responder.respond(ChartHandler.error(.serviceUnavailable, "\(chart).prov: \(e)"))
            }
        }
    }
}
