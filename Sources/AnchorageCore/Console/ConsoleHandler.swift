import Foundation

/// The web console: its page and script at `/`, and the JSON API under
/// `/api/` that the page (and any script) reads and acts through.
/// Reads run on the worker pool (they walk directories and read manifests);
/// a state-changing request needs a signed-in user and, from a browser,
/// proof that the console itself sent it (see `checkOrigin`).
final class ConsoleHandler: Sendable {
    let mirror: Mirror
    let sync: SyncRunner
    let gate: AccessGate
    let catalog: RepositoryCatalog
    let status: @Sendable () -> [String: Any]

    init(mirror: Mirror, sync: SyncRunner, gate: AccessGate, status: @escaping @Sendable () -> [String: Any]) {
        self.mirror = mirror
        self.sync = sync
        self.gate = gate
        self.status = status
        catalog = RepositoryCatalog(mirror: mirror)
    }

    /// Answers the paths it owns; false for anything else.
    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) -> Bool {
        let path = request.path
        if let asset = ConsoleAssets.file(path) {
            let responder = responder.labeled(RouteLabel(.status))
            guard request.method.isRead else { return refuse(request, allow: "GET, HEAD", responder) }
            var h = HTTPHeaders()
            h.add("Content-Type", asset.type)
            h.add("Content-Security-Policy", ConsoleAssets.contentSecurityPolicy)
            h.add("X-Content-Type-Options", "nosniff")
            h.add("X-Frame-Options", "DENY")
            h.add("Referrer-Policy", "no-referrer")
            h.add("Cache-Control", "no-cache")
            responder.respond(HTTPResponse(status: .ok, headers: h, body: .bytes(asset.bytes)))
            return true
        }
        guard path.hasPrefix("/api/") else { return false }
        let responder = responder.labeled(RouteLabel(.status))
        let endpoint = String(path.dropFirst(5))
        if endpoint == "session" { session(request, responder); return true }
        if request.method.isRead {
            mirror.pool.submit { [self] in responder.respond(read(endpoint, request)) }
            return true
        }
        guard request.method == .post || request.method == .delete else { return refuse(request, allow: "GET, HEAD, POST, DELETE", responder) }
        switch authorize(request) {
        case .failure(let e): responder.respond(e.response)
        case .success(let user):
            mirror.pool.submit { [self] in responder.respond(change(endpoint, request, user: user)) }
        }
        return true
    }

    private func refuse(_ request: HTTPRequest, allow: String, _ responder: HTTPResponder) -> Bool {
        var h = HTTPHeaders()
        h.add("Allow", allow)
        responder.respond(ConsoleJSON.response(["error": "\(request.method) is not allowed here"], .methodNotAllowed, headers: h))
        return true
    }

    // MARK: reads

    private func read(_ endpoint: String, _ request: HTTPRequest) -> HTTPResponse {
        let result: Result<Any, ConsoleError>
        switch endpoint {
        case "status": result = .success(status())
        case "activity": result = .success(activity())
        case "repositories": result = .success(repositories())
        case "repository": result = repositoryKey(request).flatMap(repository)
        case "image":
            result = repositoryKey(request).flatMap { key in
                reference(request).flatMap { ref in
                    ImageInspector(mirror: mirror, catalog: catalog).inspect(key, ref, host: PullCommands.host(request.headers["Host"])).map { $0 }
                }
            }
        case "charts": result = .success(ChartBrowser(mirror: mirror).repositories())
        case "chart":
            result = chartVersion(request).flatMap { c in
                switch ChartBrowser(mirror: mirror).files(repository: c.repository, chart: c.chart, version: c.version) {
                case .found(let files): .success(files)
                case .unknown(let why): .failure(.notFound(why))
                case .notCached: .failure(.notFound("this version's archive is not cached: pull it once to see its files"))
                }
            }
        case "sync": result = .success(syncState())
        default: result = .failure(.notFound("unknown endpoint /api/\(endpoint)"))
        }
        switch result {
        case .success(let obj): return ConsoleJSON.response(obj)
        case .failure(let e): return e.response
        }
    }

    private func activity() -> [String: Any] {
        ["minutes": mirror.counters.minutes.map { ["minute": $0.minute * 60, "hits": $0.hits, "requests": $0.total, "bytes": $0.bytes] }]
    }

    private func repositories() -> [[String: Any]] {
        let iso = ISO8601DateFormatter()
        return catalog.entries().entries.map { e in
            ["kind": e.key.kind.rawValue, "source": e.key.source, "name": e.key.name.value, "tags": e.tags.count,
             "size": e.size, "unique_size": e.uniqueSize, "pinned": e.pinned,
             "last_pull": e.lastPull > 0 ? iso.string(from: Date(timeIntervalSince1970: Double(e.lastPull))) : NSNull(),
             "last_push": e.lastPush > 0 ? iso.string(from: Date(timeIntervalSince1970: Double(e.lastPush) / 1000)) : NSNull()]
        }
    }

    private func repository(_ key: RepositoryKey) -> Result<Any, ConsoleError> {
        guard let e = catalog.entry(key) else { return .failure(.notFound("no repository \(key.path)")) }
        let pins = PinSet.load(mirror.layout)
        let src = catalog.source(key.kind)
        let iso = ISO8601DateFormatter()
        let tagged = Set(e.tags.map(\.digest))
        return .success([
            "kind": key.kind.rawValue, "source": key.source, "name": key.name.value,
            "tags": e.tags.sorted { $0.tag < $1.tag }.map { t -> [String: Any] in
                var row: [String: Any] = ["tag": t.tag, "digest": t.digest.description,
                                          "media_type": src.mediaType(t.digest) ?? NSNull(), "pinned": pins.contains(t.digest)]
                if key.kind == .hosted, let tag = Tag(t.tag) {
                    let ms = mirror.hostedStore.tagTime(key.source, key.name, tag)
                    row["pushed_at"] = ms > 0 ? iso.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) : NSNull()
                }
                return row
            },
            "untagged": e.manifests.filter { !tagged.contains($0) }.map(\.description).sorted(),
        ] as [String: Any])
    }

    private func syncState() -> [String: Any] {
        var out: [String: Any] = [
            "rules": mirror.config.sync.rules.count,
            "schedule": mirror.config.sync.schedule?.description ?? NSNull(),
            "history": sync.history.map(SyncRunner.json),
            "running": NSNull(),
        ]
        if let run = sync.current {
            let p = run.progress
            out["running"] = ["trigger": run.trigger, "items_total": p.total, "items_done": p.done, "failures": p.failed,
                              "bytes_total": p.bytesTotal, "bytes_done": p.bytesDone, "current": p.current,
                              "seconds": (Date().timeIntervalSince(p.started) * 10).rounded() / 10] as [String: Any]
        }
        return out
    }

    // MARK: changes

    private func change(_ endpoint: String, _ request: HTTPRequest, user: String) -> HTTPResponse {
        let actions = ConsoleActions(mirror: mirror, catalog: catalog, sync: sync)
        let delete = request.method == .delete
        let result: Result<[String: Any], ConsoleError>
        switch endpoint {
        case "image" where delete:
            result = repositoryKey(request).flatMap { key in
                reference(request).flatMap { ref in
                    key.kind == .hosted ? actions.deleteHosted(key, ref, user: user) : actions.evict(key, ref, user: user)
                }
            }
        case "pins":
            result = repositoryKey(request).flatMap { key in
                guard key.kind == .cached else { return .failure(.badRequest("hosted content is never evicted: nothing to pin")) }
                return reference(request).flatMap { actions.pin(key, $0, on: !delete, user: user) }
            }
        case "chart" where delete:
            result = chartVersion(request).flatMap { actions.deleteChart(repository: $0.repository, chart: $0.chart, version: $0.version, user: user) }
        case "sync" where !delete: result = actions.startSync(user: user)
        case "gc" where !delete: result = actions.collectGarbage(dryRun: request.queryValue("dry_run") != "false", user: user)
        default: result = .failure(.notFound("unknown action \(request.method) /api/\(endpoint)"))
        }
        switch result {
        case .success(let obj): return ConsoleJSON.response(obj)
        case .failure(let e): return e.response
        }
    }

    /// The signed-in user of a state-changing request. A browser request
    /// must come from this origin (`Origin`, `Sec-Fetch-Site`), and one
    /// signed in by cookie must carry its session's CSRF token: a page on
    /// another site can make the browser send the cookie or cached Basic
    /// credentials, but can neither set that header nor read the token.
    private func authorize(_ request: HTTPRequest) -> Result<String, ConsoleError> {
        guard let user = request.user else { return .failure(.signInRequired) }
        if let e = ConsoleHandler.checkOrigin(request) { return .failure(e) }
        if request.headers["Authorization"] == nil {
            guard let token = SessionTable.token(in: request), let session = gate.sessions.find(token),
                  let sent = request.headers[SessionTable.csrfHeader], ConsoleHandler.equal(sent, session.csrf) else {
                return .failure(.forbidden("missing or wrong \(SessionTable.csrfHeader): reload the console"))
            }
        }
        return .success(user)
    }

    static func checkOrigin(_ request: HTTPRequest) -> ConsoleError? {
        if let site = request.headers["Sec-Fetch-Site"]?.lowercased(), site != "same-origin", site != "none" {
            return .forbidden("cross-site request refused")
        }
        if let origin = request.headers["Origin"] {
            let host = request.headers["Host"] ?? ""
            guard origin == "http://\(host)" || origin == "https://\(host)" else { return .forbidden("cross-origin request refused") }
        }
        return nil
    }

    /// Compares in time independent of where the strings differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    // MARK: session

    /// GET: who is signed in (and the CSRF token for this session).
    /// POST `{"user", "password"}`: signs in, setting the session cookie.
    /// DELETE: signs out.
    private func session(_ request: HTTPRequest, _ responder: HTTPResponder) {
        switch request.method {
        case .get, .head:
            responder.respond(ConsoleJSON.response(sessionState(request.user, csrf: SessionTable.token(in: request).flatMap { gate.sessions.find($0)?.csrf })))
        case .delete:
            if let token = SessionTable.token(in: request) { gate.sessions.close(token) }
            var h = HTTPHeaders()
            h.add("Set-Cookie", "\(SessionTable.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
            responder.respond(ConsoleJSON.response(sessionState(nil, csrf: nil), headers: h))
        case .post:
            if let e = ConsoleHandler.checkOrigin(request) { return responder.respond(e.response) }
            responder.readBody(into: CollectedBody(limit: 4096) { [self] body, error in
                guard error == nil, !body.exceeded,
                      let obj = (try? JSONSerialization.jsonObject(with: Data(body.bytes))) as? [String: Any],
                      let user = obj["user"] as? String, let password = obj["password"] as? String else {
                    return responder.respond(ConsoleError.badRequest("expected {\"user\": …, \"password\": …}").response)
                }
                mirror.pool.submit { [self] in
                    switch gate.signIn(user: user, password: password, client: request.client) {
                    case .refused: responder.respond(ConsoleError.signInRequired.response.withError("invalid user name or password"))
                    case .limited: responder.respond(ConsoleError.tooManyRequests.response)
                    case .ok(let token, let csrf):
                        var h = HTTPHeaders()
                        // Secure over TLS: the browser then never sends it in the clear.
                        h.add("Set-Cookie", "\(SessionTable.cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict\(request.overTLS ? "; Secure" : "")")
                        responder.respond(ConsoleJSON.response(sessionState(user, csrf: csrf), headers: h))
                    }
                }
            })
        default:
            _ = refuse(request, allow: "GET, HEAD, POST, DELETE", responder)
        }
    }

    private func sessionState(_ user: String?, csrf: String?) -> [String: Any] {
        let auth = mirror.config.auth
        return [
            "user": user ?? NSNull(),
            "csrf": csrf ?? NSNull(),
            "admin": auth.isAdmin(user),
            "sign_in_possible": auth.htpasswd != nil,
            "writable_namespaces": user.map { u in mirror.config.hosted.filter { $0.mayWrite(u) || auth.isAdmin(u) }.map(\.name) } ?? [],
            "writable_chart_repositories": user.map { u in mirror.config.hostedCharts.filter { $0.mayWrite(u) || auth.isAdmin(u) }.map(\.name) } ?? [],
        ]
    }

    // MARK: parameters

    private func repositoryKey(_ request: HTTPRequest) -> Result<RepositoryKey, ConsoleError> {
        guard let kind = request.queryValue("kind").flatMap(RepositoryKey.Kind.init(rawValue:)),
              let source = request.queryValue("source"), let name = request.queryValue("name").flatMap(RepositoryName.init) else {
            return .failure(.badRequest("kind (hosted or cached), source and name are required"))
        }
        switch kind {
        case .hosted: guard mirror.config.hosted.contains(where: { $0.name == source }) else { return .failure(.notFound("no hosted namespace \(source)")) }
        case .cached: guard mirror.upstreams[source] != nil || source == mirror.config.defaultRegistry.name else { return .failure(.notFound("no upstream registry \(source)")) }
        }
        return .success(RepositoryKey(kind: kind, source: source, name: name))
    }

    private func reference(_ request: HTTPRequest) -> Result<Reference, ConsoleError> {
        guard let ref = request.queryValue("ref").flatMap(Reference.init) else { return .failure(.badRequest("ref (a tag or digest) is required")) }
        return .success(ref)
    }

    private func chartVersion(_ request: HTTPRequest) -> Result<(repository: String, chart: String, version: String), ConsoleError> {
        guard let repository = request.queryValue("repository"), let chart = request.queryValue("chart"), let version = request.queryValue("version"),
              ChartIndex.isSafeComponent(chart), ChartIndex.isSafeComponent(version) else {
            return .failure(.badRequest("repository, chart and version are required"))
        }
        return .success((repository, chart, version))
    }
}

private extension HTTPResponse {
    func withError(_ message: String) -> HTTPResponse { ConsoleJSON.response(["error": message], status) }
}
