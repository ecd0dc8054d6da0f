import Glibc

/// Turns a handler's response into what goes on the wire for one request:
/// conditional requests (304), ranges (206/416), HEAD, and the head bytes.
/// Pure, so every rule is unit-testable without a socket.
enum ResponseFinalizer {
    static func finalize(_ response: HTTPResponse, for request: HTTPRequest) -> HTTPResponse {
        var r = response
        guard request.method.isRead, r.status == .ok else { return r }
        switch r.body {
        case .empty: return r
        default: break
        }
        // The ETag is looked up only for a request that asks about it.
        if let ifNoneMatch = request.headers["If-None-Match"], let etag = r.headers["ETag"],
           ConditionalRequest.noneMatch(ifNoneMatch, etag: etag) {
            r.status = .notModified
            r.body = .empty
            r.headers.remove("Content-Type")
            return r
        }
        r.acceptsRanges = true
        guard let range = request.headers["Range"] else { return r }
        guard ConditionalRequest.ifRangeHolds(request.headers["If-Range"], etag: r.headers["ETag"]) else { return r }
        let length = r.body.length
        switch ByteRangeRequest.parse(range, length: length) {
        case .none:
            break
        case .satisfiable(let start, let count):
            r.status = .partialContent
            r.headers.set("Content-Range", "bytes \(start)-\(start + count - 1)/\(length)")
            r.body = r.body.slice(start, count)
        case .unsatisfiable:
            r.status = .rangeNotSatisfiable
            r.headers.set("Content-Range", "bytes */\(length)")
            r.body = .empty
        }
        return r
    }

    /// Serialises the status line and fields. Content-Length always comes
    /// from the body so a handler cannot send a lying length.
    /// `reserving` leaves room for a body the caller appends (one allocation
    /// for head and a small body).
    static func headBytes(_ r: HTTPResponse, keepAlive: Bool, version: HTTPVersion, date: String, reserving extra: Int = 0) -> [UInt8] {
        // Sized first, then written with memcpy: no growing array per hit.
        let connection: StaticString? = !keepAlive ? "Connection: close\r\n" : version == .http10 ? "Connection: keep-alive\r\n" : nil
        // 128 covers the fixed text (81 bytes with a 19-digit length).
        var size = 128 + r.status.reason.utf8.count + date.utf8.count + (connection?.utf8CodeUnitCount ?? 0)
        let ranges = r.acceptsRanges
        for f in r.headers where !serverOwned(f.name, ranges) { size += f.name.utf8.count + f.value.utf8.count + 4 }
        return [UInt8](unsafeUninitializedCapacity: size + max(0, extra)) { buffer, count in
            var w = HeadWriter(buffer)
            w.put("HTTP/1.1 ")
            w.put(Int64(r.status.code))
            w.put(" ")
            w.put(string: r.status.reason)
            w.put("\r\n")
            for f in r.headers where !serverOwned(f.name, ranges) {
                w.put(string: f.name)
                w.put(": ")
                w.put(string: f.value)
                w.put("\r\n")
            }
            if ranges { w.put("Accept-Ranges: bytes\r\n") }
            if !r.status.forbidsBody {
                w.put("Content-Length: ")
                w.put(max(0, r.body.length))
                w.put("\r\n")
            }
            w.put("Date: ")
            w.put(string: date)
            w.put("\r\nServer: anchorage\r\n")
            if let connection { w.put(connection) }
            w.put("\r\n")
            count = w.count
        }
    }

    /// Fields the server writes itself; the length check spares most fields
    /// the comparison.
    @inline(__always)
    private static func serverOwned(_ name: String, _ ranges: Bool) -> Bool {
        switch name.utf8.count {
        case 14: name.caseInsensitiveEquals("Content-Length")
        case 10: name.caseInsensitiveEquals("Connection")
        case 13: ranges && name.caseInsensitiveEquals("Accept-Ranges")
        default: false
        }
    }
}

/// Writes a response head into memory sized beforehand (a value with
/// mutating methods: no captured variables, so no dynamic exclusivity checks).
private struct HeadWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    mutating func put(string s: String) {
        let n = s.utf8.count
        guard n > 0, count + n <= buffer.count, let base = buffer.baseAddress else { return }
        let dst = base + count
        if s.utf8.withContiguousStorageIfAvailable({ (src: UnsafeBufferPointer<UInt8>) -> Void in
            if let from = src.baseAddress { dst.update(from: from, count: src.count) }
        }) == nil {
            for (i, c) in s.utf8.enumerated() { dst[i] = c }
        }
        count += n
    }

    mutating func put(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        guard count + n <= buffer.count, let base = buffer.baseAddress else { return }
        (base + count).update(from: s.utf8Start, count: n)
        count += n
    }

    mutating func put(_ v: Int64) {
        // Lengths and status codes: never negative, at most 19 digits.
        var rest = UInt64(clamping: v)
        var digits = 1
        while rest >= 10 { rest /= 10; digits += 1 }
        guard count + digits <= buffer.count else { return }
        rest = UInt64(clamping: v)
        for i in stride(from: count + digits - 1, through: count, by: -1) {
            buffer[i] = UInt8(48 + rest % 10)
            rest /= 10
        }
        count += digits
    }
}

/// The IMF-fixdate for the Date header, formatted once per second per loop.
final class HTTPDateCache {
    private var second: Int = -1
    private var cached = ""

    var now: String {
        var t = time(nil)
        if t != second {
            second = t
            var tmv = tm()
            gmtime_r(&t, &tmv)
            var buf = [CChar](repeating: 0, count: 64)
            strftime(&buf, 64, "%a, %d %b %Y %H:%M:%S GMT", &tmv)
            cached = stringFromCBuffer(buf)
        }
        return cached
    }
}
