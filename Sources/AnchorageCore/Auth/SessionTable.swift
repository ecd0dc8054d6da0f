import Foundation
import Synchronization

/// Console sign-ins: a random token in an HttpOnly cookie stands for a user
/// whose password was checked once, and each session carries its own token
/// against cross-site request forgery, which state-changing requests must
/// echo in a header (a cross-site form cannot set one).
final class SessionTable: Sendable {
    struct Session: Sendable {
        let user: String
        let csrf: String
        var lastUse: UInt64
    }

    static let cookieName = "anchorage_session"
    static let csrfHeader = "X-CSRF-Token"
    /// A session unused this long is forgotten.
    static let idleMillis: UInt64 = 12 * 3600 * 1000
    static let maxSessions = 10_000

    private let sessions = Mutex<[String: Session]>([:])

    /// A new session for `user`: (cookie token, CSRF token).
    func open(_ user: String) -> (token: String, csrf: String) {
        let token = SessionTable.randomToken(), csrf = SessionTable.randomToken()
        let now = monotonicMillis()
        sessions.withLock { s in
            if s.count >= SessionTable.maxSessions {
                s = s.filter { now &- $0.value.lastUse < SessionTable.idleMillis }
                if s.count >= SessionTable.maxSessions, let oldest = s.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                    s.removeValue(forKey: oldest.key)
                }
            }
            s[token] = Session(user: user, csrf: csrf, lastUse: now)
        }
        return (token, csrf)
    }

    /// The live session a token names, renewed.
    func find(_ token: String) -> Session? {
        let now = monotonicMillis()
        return sessions.withLock { s in
            guard var e = s[token] else { return nil }
            guard now &- e.lastUse < SessionTable.idleMillis else {
                s.removeValue(forKey: token)
                return nil
            }
            e.lastUse = now
            s[token] = e
            return e
        }
    }

    func close(_ token: String) { _ = sessions.withLock { $0.removeValue(forKey: token) } }

    /// The session cookie's value in a request's `Cookie` header.
    static func token(in request: HTTPRequest) -> String? {
        guard let header = request.headers["Cookie"] else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmed(" ")
            if kv.hasPrefix("\(cookieName)=") { return String(kv.dropFirst(cookieName.count + 1)) }
        }
        return nil
    }

    static func randomToken() -> String {
        var rng = SystemRandomNumberGenerator()   // getrandom(2)
        return (0..<4).map { _ in String(format: "%016llx", rng.next() as UInt64) }.joined()
    }
}
