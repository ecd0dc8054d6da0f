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
        var s = "HTTP/1.1 \(r.status.code) \(r.status.reason)\r\n"
        s.reserveCapacity(256)
        for f in r.headers where !f.name.caseInsensitiveEquals("Content-Length") && !f.name.caseInsensitiveEquals("Connection") {
            s += f.name
            s += ": "
            s += f.value
            s += "\r\n"
        }
        if !r.status.forbidsBody {
            s += "Content-Length: \(r.body.length)\r\n"
        }
        s += "Date: \(date)\r\nServer: anchorage\r\n"
        if !keepAlive {
            s += "Connection: close\r\n"
        } else if version == .http10 {
            s += "Connection: keep-alive\r\n"
        }
        s += "\r\n"
        return Array(s.utf8)
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
