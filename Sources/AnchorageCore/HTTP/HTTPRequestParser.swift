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

    private func parseHead(_ b: UnsafeBufferPointer<UInt8>) -> Swift.Result<HTTPRequest, HTTPParseError> {
        // Split into lines; each must end in CRLF (a bare LF is rejected:
        // lenient line endings are a classic request-smuggling vector).
        var lines: [UnsafeBufferPointer<UInt8>] = []
        var lineStart = 0
        for j in 0..<b.count where b[j] == 10 {
            guard j >= 1, b[j - 1] == 13 else { return .failure(.malformed("line not terminated by CRLF")) }
            lines.append(UnsafeBufferPointer(rebasing: b[lineStart..<(j - 1)]))
            lineStart = j + 1
        }
        guard let requestLine = lines.first else { return .failure(.malformed("empty request")) }
        // request-line = method SP request-target SP HTTP-version
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failure(.malformed("malformed request line"))
        }
        guard parts[0].allSatisfy(isTokenChar) else { return .failure(.malformed("invalid method")) }
        let method = String(decoding: parts[0], as: UTF8.self)
        guard parts[1].allSatisfy({ $0 > 32 && $0 < 127 }) else { return .failure(.malformed("invalid request target")) }
        let target = String(decoding: parts[1], as: UTF8.self)
        guard target.hasPrefix("/") || (target == "*" && method == "OPTIONS") else {
            return .failure(.malformed("request target must be origin-form"))
        }
        let version: HTTPVersion
        switch String(decoding: parts[2], as: UTF8.self) {
        case "HTTP/1.1": version = .http11
        case "HTTP/1.0": version = .http10
        default:
            if parts[2].starts(with: Array("HTTP/".utf8)) { return .failure(.unsupportedVersion) }
            return .failure(.malformed("invalid HTTP version"))
        }
        var headers = HTTPHeaders()
        // Fields checked below, counted here in the one pass over the names.
        var hosts = 0, framed = false
        // The last "line" is the empty one ending the head.
        for line in lines.dropFirst() where !line.isEmpty {
            if headers.count >= limits.maxHeaderFields { return .failure(.tooManyHeaders) }
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
            return .success(HTTPRequest(method: HTTPMethod(method), target: target, version: version, headers: headers, framing: f))
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
