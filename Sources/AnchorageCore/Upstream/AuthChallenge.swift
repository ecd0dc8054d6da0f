/// One `WWW-Authenticate` challenge (RFC 9110 §11.6.1): a scheme and its
/// auth-params, e.g. `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`.
public struct AuthChallenge: Equatable, Sendable {
    public let scheme: String          // lower-cased: "bearer", "basic"
    public let params: [String: String] // keys lower-cased

    /// Parses the first challenge of a header value; nil when malformed.
    public static func parse(_ header: String) -> AuthChallenge? {
        var s = Substring(header)
        func skipSpace() { while let c = s.first, c == " " || c == "\t" { s.removeFirst() } }
        skipSpace()
        let scheme = s.prefix { $0 != " " && $0 != "\t" && $0 != "," }
        guard !scheme.isEmpty, scheme.utf8.allSatisfy(isTokenChar) else { return nil }
        s.removeFirst(scheme.count)
        var params: [String: String] = [:]
        while true {
            skipSpace()
            while s.first == "," { s.removeFirst(); skipSpace() }
            if s.isEmpty { break }
            let key = s.prefix { $0 != "=" && $0 != " " && $0 != "," }
            guard !key.isEmpty, key.utf8.allSatisfy(isTokenChar) else { return nil }
            s.removeFirst(key.count)
            skipSpace()
            guard s.first == "=" else {
                // token68 or a second challenge: stop at what we have.
                break
            }
            s.removeFirst()
            skipSpace()
            var value = ""
            if s.first == "\"" {
                s.removeFirst()
                var closed = false
                while let c = s.first {
                    s.removeFirst()
                    if c == "\\" {
                        guard let n = s.first else { return nil }
                        value.append(n)
                        s.removeFirst()
                    } else if c == "\"" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
            } else {
                let tok = s.prefix { $0 != "," && $0 != " " && $0 != "\t" }
                value = String(tok)
                s.removeFirst(tok.count)
            }
            params[key.lowercased()] = value
        }
        return AuthChallenge(scheme: scheme.lowercased(), params: params)
    }
}
