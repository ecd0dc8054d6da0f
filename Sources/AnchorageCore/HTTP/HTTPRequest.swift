/// Request methods the server distinguishes; anything else is `.other` and gets 405.
public enum HTTPMethod: Sendable, Equatable, CustomStringConvertible {
    case get, head, post, put, patch, delete, options
    case other(String)

    init(_ token: String) {
        switch token {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "PATCH": self = .patch
        case "DELETE": self = .delete
        case "OPTIONS": self = .options
        default: self = .other(token)
        }
    }

    /// From the request line's bytes: the common methods without a String.
    init(_ token: UnsafeBufferPointer<UInt8>) {
        switch token.count {
        case 3 where asciiEquals(token, "GET"): self = .get
        case 4 where asciiEquals(token, "HEAD"): self = .head
        case 3 where asciiEquals(token, "PUT"): self = .put
        case 4 where asciiEquals(token, "POST"): self = .post
        default: self.init(String(decoding: token, as: UTF8.self))
        }
    }

    public var description: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .patch: "PATCH"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .other(let s): s
        }
    }

    public var isRead: Bool { self == .get || self == .head }
}

/// How the request body is framed (RFC 9112 §6): what `RequestBodyDecoder`
/// undoes for a handler that reads the body, and what lets the connection
/// refuse one without desynchronising.
public enum RequestBodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

/// A parsed request head. `path` is the raw (still percent-encoded) path:
/// routes validate it against strict grammars instead of decoding it, so
/// `%2e%2e` can never turn into `..` on the way to the disk.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var target: String
    public var path: String
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: RequestBodyFraming
    public var client: PeerAddress?
    /// The user whose Basic credentials the access gate verified.
    public internal(set) var user: String?
    /// Whether it arrived over TLS (`tls_listen`).
    public internal(set) var overTLS = false

    public init(method: HTTPMethod, target: String, version: HTTPVersion = .http11, headers: HTTPHeaders = HTTPHeaders(), framing: RequestBodyFraming = .none) {
        var path = target, query: String?
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        }
        self.init(method: method, target: target, path: path, query: query, version: version, headers: headers, framing: framing)
    }

    /// The parser's: it found the `?` while checking the target's bytes.
    init(method: HTTPMethod, target: String, path: String, query: String?, version: HTTPVersion, headers: HTTPHeaders, framing: RequestBodyFraming) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.framing = framing
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    public var keepAlive: Bool {
        guard let conn = headers["Connection"]?.lowercased() else { return version == .http11 }
        switch version {
        case .http11: return !conn.containsBytes("close")
        case .http10: return conn.containsBytes("keep-alive")
        }
    }

    /// Decoded query parameters, in order.
    public var queryItems: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { part in
            if let eq = part.firstIndex(of: "=") {
                return (PercentDecoding.decode(part[..<eq]), PercentDecoding.decode(part[part.index(after: eq)...]))
            }
            return (PercentDecoding.decode(part), "")
        }
    }

    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }
}

public enum HTTPVersion: Sendable, Equatable {
    case http10, http11
}

enum PercentDecoding {
    /// Decodes %XX and '+' (form encoding). Invalid escapes are kept literally.
    static func decode<S: StringProtocol>(_ s: S) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%"), it.count >= 2,
               let h = hexValue(it[it.startIndex]), let l = hexValue(it[it.startIndex + 1]) {
                out.append(h << 4 | l)
                it = it.dropFirst(2)
            } else if c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }
}
