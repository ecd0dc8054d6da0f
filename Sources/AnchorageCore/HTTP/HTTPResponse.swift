/// Body bytes that become available over time: a blob still arriving
/// from its upstream, or what a remote store or a peer node returns.
/// A connection sends what is `available()`, then asks to be woken when
/// more is. A source that verifies its content withholds the tail until the
/// digest matched, so `available()` never reaches `length` for bytes that
/// turn out to be wrong.
public protocol BodyStream: AnyObject, Sendable {
    /// The total body length.
    var length: Int64 { get }
    /// How many bytes from the start may be sent now, or nil when the
    /// stream failed and every reader must be cut off.
    func available() -> Int64?
    /// Calls `wake` (on any thread, exactly once) when `available()` moved
    /// past `offset` or the stream failed. Returns false if that is already so.
    func notifyWhenAvailable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool
    /// Copies available bytes at `offset` into `buffer`.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    /// The local file that holds the bytes, if any: a plain connection then
    /// sends the available part with sendfile instead of copying it.
    var localFile: OpenFile? { get }
}

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

/// Where a response's content came from, for the access log's `cache=` field
/// and the cache metrics.
public enum CacheResult: String, Sendable, CaseIterable {
    case hit, miss, coalesced, revalidated, stale, pass
    case error = "ERROR"

    /// Served from what the cache already held (possibly after a cheap check).
    var isCached: Bool { self == .hit || self == .revalidated }

    /// The `X-Anchorage-Cache` header's value.
    var headerValue: String {
        switch self {
        case .hit: "HIT"
        case .miss: "MISS"
        case .coalesced: "COALESCED"
        case .revalidated: "REVALIDATED"
        case .stale: "STALE"
        case .pass: "PASS"
        case .error: "ERROR"
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
