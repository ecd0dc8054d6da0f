import Glibc

/// Why a request could not be parsed, with the status RFC 9110/9112 prescribe.
public enum HTTPParseError: Error, Equatable, Sendable {
    case requestLineTooLong        // 414
    case headersTooLarge           // 431 (bytes)
    case tooManyHeaders            // 431 (fields)
    case malformed(String)         // 400
    case unsupportedVersion        // 505
    case unsupportedTransferCoding // 501

    public var status: HTTPStatus {
        switch self {
        case .requestLineTooLong: .uriTooLong
        case .headersTooLarge, .tooManyHeaders: .headerFieldsTooLarge
        case .malformed: .badRequest
        case .unsupportedVersion: .httpVersionNotSupported
        case .unsupportedTransferCoding: .notImplemented
        }
    }

    public var reason: String {
        switch self {
        case .requestLineTooLong: "request line longer than 8 KiB"
        case .headersTooLarge: "header section larger than 64 KiB"
        case .tooManyHeaders: "more than 100 header fields"
        case .malformed(let why): why
        case .unsupportedVersion: "only HTTP/1.0 and HTTP/1.1 are supported"
        case .unsupportedTransferCoding: "unsupported Transfer-Encoding"
        }
    }
}

public struct HTTPParserLimits: Sendable {
    public var maxRequestLine = 8 * 1024
    public var maxHeaderBytes = 64 * 1024
    public var maxHeaderFields = 100
    public init() {}
}

/// Parses one request head from the front of a byte buffer (RFC 9112 §2-§6).
///
/// Pure: no sockets. The connection appends what it reads and calls `parse`
/// again; a head split across any number of reads gives the same result, and
/// bytes after the head (a pipelined request) are left for the next call.
public struct HTTPRequestParser: Sendable {
    public enum Result: Equatable {
        case needMore
        case request(consumed: Int)
        case error(HTTPParseError)
    }

    public let limits: HTTPParserLimits
    /// How far the terminator search got, so a slowly arriving head is
    /// scanned once overall; and where the request line ended, once known.
    private var scanned = 0
    private var lineEnd = -1
    public private(set) var parsed: HTTPRequest?

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    public mutating func reset() {
        scanned = 0
        lineEnd = -1
        parsed = nil
    }

    public mutating func parse(_ buf: UnsafeRawBufferPointer) -> Result {
        let bytes = buf.bindMemory(to: UInt8.self)
        let n = bytes.count
        // Tolerate empty lines before the request line (RFC 9112 §2.2).
        var start = 0
        while start + 1 < n, bytes[start] == 13, bytes[start + 1] == 10 { start += 2 }
        // Find the end of the request line first to apply its own limit.
        if lineEnd < 0 {
            var i = max(start, scanned)
            while i < n, bytes[i] != 10 { i += 1 }
            scanned = i
            // Fail fast on bytes that cannot start a request (a TLS
            // ClientHello, binary junk) instead of waiting for a timeout.
            var j = start
            while j < i, bytes[j] != 32 {
                if !isTokenChar(bytes[j]) { return .error(.malformed("not an HTTP request")) }
                j += 1
            }
            if i == n {
                if n - start > limits.maxRequestLine { return .error(.requestLineTooLong) }
                return .needMore
            }
            lineEnd = i
            if lineEnd - start > limits.maxRequestLine { return .error(.requestLineTooLong) }
        }
        // Then the blank line ending the head (LF followed by CRLF or LF).
        var headEnd = -1
        var i = max(lineEnd, scanned - 2)
        while i + 1 < n {
            if bytes[i] == 10 {
                if bytes[i + 1] == 10 { headEnd = i + 2; break }
                if bytes[i + 1] == 13, i + 2 < n, bytes[i + 2] == 10 { headEnd = i + 3; break }
            }
            i += 1
        }
        if headEnd < 0 {
            scanned = max(lineEnd, n - 2)
            if n - start > limits.maxHeaderBytes { return .error(.headersTooLarge) }
            return .needMore
        }
        if headEnd - start > limits.maxHeaderBytes { return .error(.headersTooLarge) }
        switch parseHead(UnsafeBufferPointer(rebasing: bytes[start..<headEnd])) {
        case .success(let req):
            parsed = req
            scanned = 0
            lineEnd = -1
            return .request(consumed: headEnd)
        case .failure(let e):
            return .error(e)
        }
    }

    /// One pass over the head's lines, on its bytes: no line or part arrays,
    /// and Strings only for what the request keeps (the target, the fields).
    private func parseHead(_ b: UnsafeBufferPointer<UInt8>) -> Swift.Result<HTTPRequest, HTTPParseError> {
        guard let base = b.baseAddress else { return .failure(.malformed("empty request")) }
        let n = b.count
        // The end of the line starting at `from` (the CR's offset), or nil
        // when no LF follows. Each line must end in CRLF (a bare LF is
        // rejected: lenient line endings are a classic request-smuggling vector).
        func lineEnd(_ from: Int) -> Swift.Result<Int, HTTPParseError>? {
            guard from < n, let lf = memchr(base + from, 10, n - from) else { return nil }
            let j = base.distance(to: lf.assumingMemoryBound(to: UInt8.self))
            guard j >= 1, b[j - 1] == 13, j - 1 >= from else { return .failure(.malformed("line not terminated by CRLF")) }
            return .success(j - 1)
        }
        guard let first = lineEnd(0) else { return .failure(.malformed("empty request")) }
        guard case .success(let requestLineEnd) = first else {
            if case .failure(let e) = first { return .failure(e) }
            return .failure(.malformed("empty request"))
        }
        // request-line = method SP request-target SP HTTP-version
        var sp1 = -1, sp2 = -1
        for j in 0..<requestLineEnd where b[j] == 32 {
            if sp1 < 0 { sp1 = j } else if sp2 < 0 { sp2 = j } else { return .failure(.malformed("malformed request line")) }
        }
        guard sp1 > 0, sp2 > sp1 + 1 else { return .failure(.malformed("malformed request line")) }
        let methodBytes = UnsafeBufferPointer(rebasing: b[0..<sp1])
        guard methodBytes.allSatisfy(isTokenChar) else { return .failure(.malformed("invalid method")) }
        let targetBytes = UnsafeBufferPointer(rebasing: b[(sp1 + 1)..<sp2])
        var query = -1
        for j in 0..<targetBytes.count {
            let c = targetBytes[j]
            guard c > 32 && c < 127 else { return .failure(.malformed("invalid request target")) }
            if c == UInt8(ascii: "?") && query < 0 { query = j }
        }
        let method = HTTPMethod(methodBytes)
        guard targetBytes[0] == UInt8(ascii: "/") || (targetBytes.count == 1 && targetBytes[0] == UInt8(ascii: "*") && method == .options) else {
            return .failure(.malformed("request target must be origin-form"))
        }
        let versionBytes = UnsafeBufferPointer(rebasing: b[(sp2 + 1)..<requestLineEnd])
        let version: HTTPVersion
        if asciiEquals(versionBytes, "HTTP/1.1") {
            version = .http11
        } else if asciiEquals(versionBytes, "HTTP/1.0") {
            version = .http10
        } else if versionBytes.starts(with: "HTTP/".utf8) {
            return .failure(.unsupportedVersion)
        } else {
            return .failure(.malformed("invalid HTTP version"))
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        // Fields checked below, counted here in the one pass over the names.
        var hosts = 0, framed = false
        var lineStart = requestLineEnd + 2
        while true {
            guard let next = lineEnd(lineStart) else { break }
            let end: Int
            switch next {
            case .success(let e): end = e
            case .failure(let e): return .failure(e)
            }
            defer { lineStart = end + 2 }
            // The empty line ending the head.
            if end == lineStart { break }
            if headers.count >= limits.maxHeaderFields { return .failure(.tooManyHeaders) }
            let line = UnsafeBufferPointer(rebasing: b[lineStart..<end])
            if line[0] == 32 || line[0] == 9 { return .failure(.malformed("obsolete line folding")) }
            guard let colon = line.firstIndex(of: 58) else { return .failure(.malformed("header without colon")) }
            let name = UnsafeBufferPointer(rebasing: line[..<colon])
            guard !name.isEmpty, name.allSatisfy(isTokenChar) else { return .failure(.malformed("invalid header name")) }
            var vs = colon + 1, ve = line.count
            while vs < ve, line[vs] == 32 || line[vs] == 9 { vs += 1 }
            while ve > vs, line[ve - 1] == 32 || line[ve - 1] == 9 { ve -= 1 }
            let value = UnsafeBufferPointer(rebasing: line[vs..<ve])
            // NUL and bare CR in a value are refused (RFC 9110 §5.5).
            guard value.allSatisfy({ $0 != 0 && $0 != 13 && $0 != 127 && ($0 >= 32 || $0 == 9) }) else {
                return .failure(.malformed("invalid character in header value"))
            }
            switch name.count {
            case 4 where asciiEqualsLowercased(name, "host"): hosts += 1
            case 14 where asciiEqualsLowercased(name, "content-length"): framed = true
            case 17 where asciiEqualsLowercased(name, "transfer-encoding"): framed = true
            default: break
            }
            headers.add(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
        if version == .http11 && hosts != 1 {
            return .failure(.malformed("HTTP/1.1 request needs exactly one Host header"))
        }
        switch framed ? framing(headers) : .success(.none) {
        case .success(let f):
            let target = String(decoding: targetBytes, as: UTF8.self)
            let path = query < 0 ? target : String(decoding: UnsafeBufferPointer(rebasing: targetBytes[..<query]), as: UTF8.self)
            let q = query < 0 ? nil : String(decoding: UnsafeBufferPointer(rebasing: targetBytes[(query + 1)...]), as: UTF8.self)
            return .success(HTTPRequest(method: method, target: target, path: path, query: q, version: version, headers: headers, framing: f))
        case .failure(let e):
            return .failure(e)
        }
    }

    /// RFC 9112 §6.3: a message with both Content-Length and Transfer-Encoding,
    /// or conflicting Content-Lengths, is refused outright (smuggling).
    private func framing(_ headers: HTTPHeaders) -> Swift.Result<RequestBodyFraming, HTTPParseError> {
        let te = headers.all("Transfer-Encoding")
        let cl = headers.all("Content-Length")
        if !te.isEmpty {
            if !cl.isEmpty { return .failure(.malformed("both Content-Length and Transfer-Encoding")) }
            let codings = te.flatMap { $0.split(separator: ",") }.map { $0.trimmed(" \t").lowercased() }
            guard codings.last == "chunked" else { return .failure(.unsupportedTransferCoding) }
            return .success(.chunked)
        }
        guard !cl.isEmpty else { return .success(.none) }
        let values = Set(cl.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { $0.trimmed(" \t") })
        guard values.count == 1, let v = values.first, !v.isEmpty, v.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), v.utf8.count <= 18,
              let n = Int(v) else {
            return .failure(.malformed("invalid Content-Length"))
        }
        return .success(n == 0 ? .none : .contentLength(n))
    }
}

/// `bytes` equals `text` exactly.
@inline(__always)
func asciiEquals(_ bytes: UnsafeBufferPointer<UInt8>, _ text: StaticString) -> Bool {
    bytes.count == text.utf8CodeUnitCount && text.withUTF8Buffer { bytes.elementsEqual($0) }
}

/// `bytes` equals `lower` (lowercase ASCII) ignoring ASCII case.
@inline(__always)
func asciiEqualsLowercased(_ bytes: UnsafeBufferPointer<UInt8>, _ lower: StaticString) -> Bool {
    guard bytes.count == lower.utf8CodeUnitCount else { return false }
    return lower.withUTF8Buffer { l in
        for i in 0..<l.count {
            var c = bytes[i]
            if c >= 65 && c <= 90 { c += 32 }
            if c != l[i] { return false }
        }
        return true
    }
}

@inline(__always)
func isTokenChar(_ c: UInt8) -> Bool {
    // RFC 9110 §5.6.2 tchar
    switch c {
    case 48...57, 65...90, 97...122: return true
    case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: return true
    default: return false
    }
}

extension StringProtocol {
    func trimmed(_ set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
