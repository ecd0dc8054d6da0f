import Foundation
import Synchronization

/// Who may use the mirror: client addresses (`[server] allow`), then, when
/// `[auth] htpasswd` is set, HTTP Basic credentials — the registry `Basic`
/// challenge that docker, containerd, podman, skopeo and helm all answer.
///
/// bcrypt is slow on purpose, so a verified (user, password) pair is
/// remembered (by its SHA-256) and checking it again costs a hash; unknown
/// pairs are verified on a worker thread, never on an event loop. Failed
/// logins are limited per client address: past `failure_limit` in a minute,
/// that address gets 429 without any bcrypt work.
///
/// The console signs in once through `signIn` and is then known by its
/// session cookie (`SessionTable`); its page and script load without
/// credentials, holding no data.
final class AccessGate: Sendable {
    let allow: [AddressRange]
    let users: [String: String]?
    let failureLimit: Int
    private let verified = Mutex<Set<String>>([])
    private let failures = Mutex<[[UInt8]: (count: Int, since: UInt64)]>([:])
    let sessions = SessionTable()

    /// What an unknown user's password is checked against: the file's
    /// costliest entry (a match there still admits no one, the user being
    /// unknown), so a wrong user name costs as much time as a wrong password
    /// and timing does not tell which user names exist.
    private let decoy: String

    init(allow: [AddressRange], htpasswd: Htpasswd?, failureLimit: Int) {
        self.allow = allow
        self.users = htpasswd?.users
        self.failureLimit = failureLimit
        decoy = htpasswd?.users.values.max { Int($0.dropFirst(4).prefix(2)) ?? 0 < Int($1.dropFirst(4).prefix(2)) ?? 0 } ?? ""
    }

    /// The hash a login for `user` is checked against (the decoy for an unknown user).
    func storedHash(for user: String) -> String { users?[user] ?? decoy }

    /// Probes, the console's static files and its sign-in stay reachable
    /// without credentials (address rules still apply).
    private static let open: Set<String> = ["/healthz", "/readyz", "/", "/console.js", "/console.css", "/api/session"]

    /// Calls `next` (possibly on another thread) with the signed-in user, if
    /// any, when the request may proceed; otherwise answers it.
    func admit(_ request: HTTPRequest, _ responder: HTTPResponder, pool: WorkerPool, next: @escaping @Sendable (String?) -> Void) {
        if !allow.isEmpty {
            guard let peer = request.client, allow.contains(where: { $0.contains(peer) }) else {
                return responder.respond(RegistryError(.denied, .forbidden, "this client address may not use the mirror").response)
            }
        }
        guard let users else { return next(nil) }
        // A session stands for its user on the console's own API only: the
        // registry and chart APIs (which check no CSRF token) take Basic.
        if request.path.hasPrefix("/api/"), let token = SessionTable.token(in: request), let session = sessions.find(token) {
            return next(session.user)
        }
        if AccessGate.open.contains(request.path), request.headers["Authorization"] == nil { return next(nil) }
        let peerKey = request.client?.bytes ?? []
        if isBlocked(peerKey) {
            var e = RegistryError(.tooManyRequests, .tooManyRequests, "too many failed logins from this address; try again later")
            e.retryAfter = 60
            return responder.respond(e.response)
        }
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmed(" ")).flatMap({ String(data: $0, encoding: .utf8) }),
              let colon = decoded.firstIndex(of: ":") else {
            return responder.respond(AccessGate.challenge("authentication required", prompt: request.headers[AccessGate.consoleHeader] == nil))
        }
        let user = String(decoded[..<colon]), password = String(decoded[decoded.index(after: colon)...])
        let key = Hasher.digest(Array("\(user)\u{0}\(password)".utf8)).hex
        if verified.withLock({ $0.contains(key) }) { return next(user) }
        pool.submit { [self] in
            // Always one bcrypt, known user or not (see `decoy`).
            let matches = Bcrypt.verify(password, hash: storedHash(for: user))
            if matches, users[user] != nil {
                verified.withLock { v in
                    if v.count > 10_000 { v.removeAll() }
                    v.insert(key)
                }
                next(user)
            } else {
                recordFailure(peerKey)
                Log.warn("failed login", ["client": request.client?.host ?? "-", "user": user])
                responder.respond(AccessGate.challenge("invalid username or password", prompt: request.headers[AccessGate.consoleHeader] == nil))
            }
        }
    }

    /// Sent by the console's own requests: their 401 carries no Basic
    /// challenge, so the browser shows the console's sign-in form rather
    /// than its own prompt.
    static let consoleHeader = "X-Anchorage-Console"

    static func challenge(_ message: String, prompt: Bool = true) -> HTTPResponse {
        var r = RegistryError(.unauthorized, .unauthorized, message).response
        if prompt { r.headers.add("WWW-Authenticate", "Basic realm=\"anchorage\"") }
        return r
    }

    enum SignIn { case ok(token: String, csrf: String), refused, limited }

    /// Checks a password (one bcrypt, on the calling thread: call it off the
    /// event loops) under the same failure limit as Basic logins.
    func signIn(user: String, password: String, client: PeerAddress?) -> SignIn {
        guard let users else { return .refused }
        let peerKey = client?.bytes ?? []
        if isBlocked(peerKey) { return .limited }
        guard Bcrypt.verify(password, hash: storedHash(for: user)), users[user] != nil else {
            recordFailure(peerKey)
            Log.warn("failed login", ["client": client?.host ?? "-", "user": user])
            return .refused
        }
        let s = sessions.open(user)
        return .ok(token: s.token, csrf: s.csrf)
    }

    private func isBlocked(_ peer: [UInt8]) -> Bool {
        let now = monotonicMillis()
        return failures.withLock { f in
            guard let e = f[peer] else { return false }
            if now &- e.since > 60_000 {
                f.removeValue(forKey: peer)
                return false
            }
            return e.count >= failureLimit
        }
    }

    private func recordFailure(_ peer: [UInt8]) {
        let now = monotonicMillis()
        failures.withLock { f in
            if f.count > 100_000 { f.removeAll() }
            if let e = f[peer], now &- e.since <= 60_000 {
                f[peer] = (e.count + 1, e.since)
            } else {
                f[peer] = (1, now)
            }
        }
    }
}
