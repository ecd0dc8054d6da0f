/// A response body, chosen so the hot paths never copy through Swift arrays:
/// a region of a local file goes out with sendfile(2); a stream as its
/// bytes become available.
public enum HTTPBody: Sendable {
    case empty
    case bytes([UInt8])
    case file(OpenFile, offset: Int64, length: Int64)
    case stream(any BodyStream, offset: Int64, length: Int64)
    /// Only for HEAD: the length a GET would have, with no body at hand
    /// (an upstream HEAD answered a cache miss).
    case lengthOnly(Int64)

    public static func text(_ s: String) -> HTTPBody { .bytes(Array(s.utf8)) }

    public var length: Int64 {
        switch self {
        case .empty: 0
        case .bytes(let b): Int64(b.count)
        case .file(_, _, let l): l
        case .stream(_, _, let l): l
        case .lengthOnly(let l): l
        }
    }

    /// The same representation narrowed to [start, start+count).
    func slice(_ start: Int64, _ count: Int64) -> HTTPBody {
        switch self {
        case .empty: return .empty
        case .bytes(let b): return .bytes(Array(b[Int(start)..<Int(start + count)]))
        case .file(let f, let o, _): return .file(f, offset: o + start, length: count)
        case .stream(let g, let o, _): return .stream(g, offset: o + start, length: count)
        case .lengthOnly: return .lengthOnly(count)
        }
    }
}

public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: HTTPBody
    /// For the access log's `cache=` field (hit, miss, stale, …).
    public var cacheStatus: CacheResult?
    /// Close the connection after this response (errors that desynchronise).
    public var closeConnection = false
    /// What the metrics count it as (set by `HTTPResponder`).
    var label = RouteLabel.other
    /// Write `Accept-Ranges: bytes` (set by `ResponseFinalizer`; a flag
    /// rather than a field, so a hit's header array is not copied to add it).
    var acceptsRanges = false

    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: HTTPBody = .empty, cacheStatus: CacheResult? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.cacheStatus = cacheStatus
    }

    public static func text(_ status: HTTPStatus, _ text: String) -> HTTPResponse {
        var h = HTTPHeaders()
        h.add("Content-Type", "text/plain; charset=utf-8")
        return HTTPResponse(status: status, headers: h, body: .text(text.hasSuffix("\n") ? text : text + "\n"))
    }

    public static func json(_ status: HTTPStatus, _ json: String, headers extra: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var h = extra
        h.add("Content-Type", "application/json; charset=utf-8")
        return HTTPResponse(status: status, headers: h, body: .text(json))
    }
}

extension HTTPBody {
    /// A stored blob, whole: a local file keeps the sendfile fast path.
    init(_ blob: StoredBlob) {
        switch blob {
        case .file(let f, let size): self = .file(f, offset: 0, length: size)
        case .stream(let s): self = .stream(s, offset: 0, length: s.length)
        }
    }
}
