import Foundation

/// ChartMuseum's HTTP API for a hosted chart repository, under
/// `/charts/NAME/`, so `helm cm-push` and existing CI scripts work unchanged;
/// plus what Helm reads (`index.yaml`, archives, `.prov`). Answers are
/// ChartMuseum's: JSON, errors as `{"error":"…"}`. Writes need a signed-in
/// user the section names in `writers`.
struct ChartMuseumAPI: Sendable {
    let repository: HostedChartRepository

    /// Upload bodies: a package, its provenance and the multipart framing.
    static let maxUploadBytes = ChartPackage.maxArchiveBytes + (2 << 20)

    static func json(_ status: HTTPStatus, _ object: Any) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var r = HTTPResponse.json(status, String(decoding: data, as: UTF8.self))
        r.cacheStatus = status.code < 400 ? .pass : .error
        return r
    }

    static func error(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        json(status, ["error": message])
    }

    /// What a path under `/charts/NAME/` names.
    enum Route: Equatable {
        case index, file(String), charts, chart(String), version(String, String), provenance, unknown

        init(_ rest: [String]) {
            switch rest.count {
            case 1: self = rest[0] == "index.yaml" ? .index : .file(rest[0])
            case 2 where rest[0] == "api": self = rest[1] == "charts" ? .charts : rest[1] == "prov" ? .provenance : .unknown
            case 3 where rest[0] == "api" && rest[1] == "charts": self = .chart(rest[2])
            case 4 where rest[0] == "api" && rest[1] == "charts": self = .version(rest[2], rest[3])
            default: self = .unknown
            }
        }
    }

    /// `rest`: the path's components after `/charts/NAME/`. With an object
    /// store every request first brings the repository up to date with the
    /// bucket (a conditional GET), on a worker; a write the store cannot
    /// take now gets 503.
    func handle(_ rest: [Substring], _ request: HTTPRequest, _ responder: HTTPResponder) {
        guard repository.shared != nil else { return route(rest, request, responder) }
        repository.pool.submit(key: "charts/\(repository.name)") { [self] in
            if let down = repository.refresh(), !request.method.isRead {
                return responder.respond(ChartMuseumAPI.error(.serviceUnavailable, "the object store holding \(repository.name) is unavailable: \(down)"))
            }
            route(rest, request, responder)
        }
    }

    private func route(_ rest: [Substring], _ request: HTTPRequest, _ responder: HTTPResponder) {
        let m = request.method
        if !m.isRead, let refusal = writeRefusal(request) { return responder.respond(refusal) }
        switch (Route(rest.map(String.init)), m) {
        case (.index, .get), (.index, .head):
            responder.respond(index(request))
        case (.file(let file), .get), (.file(let file), .head):
            responder.respond(download(file))
        case (.charts, .get), (.charts, .head):
            let all = Dictionary(uniqueKeysWithValues: repository.chartNames().map { ($0, versionsJSON($0) ?? []) })
            responder.respond(ChartMuseumAPI.json(.ok, all))
        case (.chart(let chart), .get), (.chart(let chart), .head):
            guard let list = versionsJSON(chart) else { return responder.respond(ChartMuseumAPI.error(.notFound, "chart not found")) }
            responder.respond(ChartMuseumAPI.json(.ok, list))
        case (.version(let chart, let version), .get), (.version(let chart, let version), .head):
            guard let v = repository.version(chart, version) else { return responder.respond(ChartMuseumAPI.error(.notFound, "improper constraint: \(version)")) }
            var r = HTTPResponse(status: .ok, body: .bytes(v.json))
            r.headers.add("Content-Type", "application/json; charset=utf-8")
            responder.respond(r)
        case (.version(let chart, let version), .delete):
            repository.pool.submit(key: "charts/\(repository.name)") { [repository] in
                responder.respond(repository.delete(chart, version)
                    ? ChartMuseumAPI.json(.ok, ["deleted": true])
                    : ChartMuseumAPI.error(.notFound, "chart not found: \(chart)-\(version)"))
            }
        case (.charts, .post):
            upload(request, responder, provenanceOnly: false)
        case (.provenance, .post):
            upload(request, responder, provenanceOnly: true)
        default:
            responder.respond(ChartMuseumAPI.error(m.isRead ? .notFound : .methodNotAllowed, "\(m) \(request.path) is not part of this repository's API"))
        }
    }

    private func writeRefusal(_ request: HTTPRequest) -> HTTPResponse? {
        guard let user = request.user else {
            var r = ChartMuseumAPI.error(.unauthorized, "uploading to \(repository.name) needs a signed-in user with write access")
            r.headers.add("WWW-Authenticate", "Basic realm=\"anchorage\"")
            return r
        }
        return repository.config.mayWrite(user) ? nil : ChartMuseumAPI.error(.forbidden, "user \(user) may not write to \(repository.name)")
    }

    private func versionsJSON(_ chart: String) -> [Any]? {
        repository.versions(chart)?.compactMap { try? JSONSerialization.jsonObject(with: Data($0.json)) }
    }

    private func index(_ request: HTTPRequest) -> HTTPResponse {
        let gzip = Gzip.accepted(request.headers["Accept-Encoding"])
        let index = repository.index(gzip: gzip)
        var h = HTTPHeaders()
        h.add("Content-Type", "application/x-yaml")
        h.add("Vary", "Accept-Encoding")
        h.add("Cache-Control", "no-cache")
        if index.gzipped {
            h.add("Content-Encoding", "gzip")
            h.add("ETag", String(index.etag.dropLast()) + "-gz\"")
        } else {
            h.add("ETag", index.etag)
        }
        return HTTPResponse(status: .ok, headers: h, body: .bytes(index.body), cacheStatus: .hit)
    }

    private func download(_ file: String) -> HTTPResponse {
        if file.hasSuffix(".tgz.prov") {
            guard let v = repository.file(String(file.dropLast(5))), let prov = repository.provenance(v) else {
                return ChartMuseumAPI.error(.notFound, "\(file) not found")
            }
            return HTTPResponse(status: .ok, headers: HTTPHeaders([("Content-Type", "application/pgp-signature")]), body: .bytes(prov), cacheStatus: .hit)
        }
        guard let v = repository.file(file), let f = repository.openArchive(v) else {
            return ChartMuseumAPI.error(.notFound, "\(file) not found")
        }
        return HTTPResponse(status: .ok, headers: ChartHandler.archiveHeaders(v.digest), body: .file(f, offset: 0, length: f.size), cacheStatus: .hit)
    }

    /// `POST api/charts` (multipart `chart` and optional `prov`, or the
    /// package as the body) and `POST api/prov`.
    private func upload(_ request: HTTPRequest, _ responder: HTTPResponder, provenanceOnly: Bool) {
        if case .contentLength(let n) = request.framing, n > ChartMuseumAPI.maxUploadBytes {
            return responder.respond(ChartMuseumAPI.error(.payloadTooLarge, "upload larger than \(ChartMuseumAPI.maxUploadBytes >> 20) MiB"))
        }
        let boundary = Multipart.boundary(request.headers["Content-Type"])
        let force = request.queryItems.contains { $0.name == "force" && $0.value != "false" }
        responder.readBody(into: CollectedBody(limit: ChartMuseumAPI.maxUploadBytes) { [repository] body, error in
            if body.exceeded { return responder.respond(ChartMuseumAPI.error(.payloadTooLarge, "upload larger than \(ChartMuseumAPI.maxUploadBytes >> 20) MiB")) }
            if let error { return responder.respond(ChartMuseumAPI.error(.badRequest, "upload incomplete (\(error))")) }
            let bytes = body.bytes
            repository.pool.submit(key: "charts/\(repository.name)") {
                responder.respond(ChartMuseumAPI.store(repository, bytes, boundary: boundary, force: force, provenanceOnly: provenanceOnly))
            }
        })
    }

    static func store(_ repository: HostedChartRepository, _ bytes: [UInt8], boundary: String?, force: Bool, provenanceOnly: Bool) -> HTTPResponse {
        var chart: MultipartPart?, prov: MultipartPart?
        if let boundary {
            guard let parts = Multipart.parse(bytes, boundary: boundary) else { return error(.badRequest, "malformed multipart body") }
            chart = parts.first { $0.name == "chart" }
            prov = parts.first { $0.name == "prov" }
        } else if provenanceOnly {
            prov = MultipartPart(name: "prov", fileName: nil, body: bytes)
        } else {
            chart = MultipartPart(name: "chart", fileName: nil, body: bytes)
        }
        if provenanceOnly {
            guard let prov else { return error(.badRequest, "no provenance file (form field prov)") }
            guard let (name, version) = provenanceTarget(prov) else {
                return error(.badRequest, "cannot tell which chart the provenance file is for")
            }
            return repository.saveProvenance(name, version, prov.body)
                ? json(.created, ["saved": true]) : error(.notFound, "chart \(name)-\(version) not found: upload the chart first")
        }
        guard let chart else { return error(.badRequest, "no chart package (form field chart)") }
        let package: ChartPackage
        switch ChartPackage.read(chart.body, fileName: chart.fileName) {
        case .failure(let why): return error(.badRequest, "\(why)")
        case .success(let p): package = p
        }
        switch repository.save(package, archive: chart.body, provenance: prov?.body, force: force) {
        case .success: return json(.created, ["saved": true])
        case .failure(.exists): return error(.conflict, "file already exists")
        case .failure(.storage(let why)):
            Log.error("chart upload failed", ["repository": repository.name, "error": why])
            return error(.insufficientStorage, why)
        }
    }

    /// The chart a provenance file signs: from its file name
    /// (`NAME-VERSION.tgz.prov`), else from the Chart.yaml it embeds.
    private static func provenanceTarget(_ part: MultipartPart) -> (String, String)? {
        let text = String(decoding: part.body.prefix(1 << 20), as: UTF8.self)
        var name: String?, version: String?
        for line in text.split(separator: "\n") {
            if name == nil, line.hasPrefix("name: ") { name = line.dropFirst(6).trimmed(" \r\"'") }
            if version == nil, line.hasPrefix("version: ") { version = line.dropFirst(9).trimmed(" \r\"'") }
        }
        if let name, let version, ChartIndex.isSafeComponent(name), ChartIndex.isSafeComponent(version),
           part.fileName == nil || part.fileName == "\(name)-\(version).tgz.prov" {
            return (name, version)
        }
        return nil
    }
}
