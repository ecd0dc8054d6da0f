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
        let etag = r.headers["ETag"]
        if let etag, ConditionalRequest.noneMatch(request.headers["If-None-Match"], etag: etag) {
            r.status = .notModified
            r.body = .empty
            r.headers.remove("Content-Type")
            return r
        }
        r.headers.set("Accept-Ranges", "bytes")
        guard ConditionalRequest.ifRangeHolds(request.headers["If-Range"], etag: etag) else { return r }
        let length = r.body.length
        switch ByteRangeRequest.parse(request.headers["Range"], length: length) {
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
    static func headBytes(_ r: HTTPResponse, keepAlive: Bool, version: HTTPVersion, date: String) -> [UInt8] {
        // Built as bytes: string concatenation cost more than the send.
        var b: [UInt8] = []
        b.reserveCapacity(512)
        func put(_ s: String) { b.append(contentsOf: s.utf8) }
        func put(_ s: StaticString) { s.withUTF8Buffer { b.append(contentsOf: $0) } }
        func put(_ v: Int64) {
            if v >= 10 { put(v / 10) }
            b.append(UInt8(48 + v % 10))
        }
        put("HTTP/1.1 ")
        put(Int64(r.status.code))
        put(" ")
        put(r.status.reason)
        put("\r\n")
        for f in r.headers {
            // Both are the server's to write; the length check spares most
            // fields the comparison.
            switch f.name.utf8.count {
            case 14 where f.name.caseInsensitiveEquals("Content-Length"): continue
            case 10 where f.name.caseInsensitiveEquals("Connection"): continue
            default: break
            }
            put(f.name)
            put(": ")
            put(f.value)
            put("\r\n")
        }
        if !r.status.forbidsBody {
            put("Content-Length: ")
            put(max(0, r.body.length))
            put("\r\n")
        }
        put("Date: ")
        put(date)
        put("\r\nServer: anchorage\r\n")
        if !keepAlive {
            put("Connection: close\r\n")
        } else if version == .http10 {
            put("Connection: keep-alive\r\n")
        }
        put("\r\n")
        return b
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
