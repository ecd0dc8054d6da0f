import Foundation
import Synchronization

/// Bearer tokens per (upstream, scope), kept until shortly before they expire.
final class TokenCache: Sendable {
    private struct Entry { let token: String; let expires: UInt64 }
    private let tokens = Mutex<[String: Entry]>([:])

    func get(_ scope: String) -> String? {
        let now = monotonicMillis()
        return tokens.withLock { t in
            guard let e = t[scope], e.expires > now else { return nil }
            return e.token
        }
    }

    /// Stores a token; refreshed 10% (at least 5 s) before `expiresIn`.
    func put(_ scope: String, token: String, expiresIn: Int) {
        let life = UInt64(max(expiresIn, 10)) * 1000
        let margin = max(life / 10, 5000)
        let expires = monotonicMillis() + (life > margin ? life - margin : life / 2)
        tokens.withLock { $0[scope] = Entry(token: token, expires: expires) }
    }
}
