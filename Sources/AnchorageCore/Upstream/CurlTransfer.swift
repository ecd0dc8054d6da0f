import CCurl
import Foundation
import Synchronization

/// Receives one transfer's final response (after redirects).
protocol TransferSink: AnyObject {
    /// The final status and headers. Return false to abort the transfer.
    func begin(status: Int, headers: HTTPHeaders) -> Bool
    /// A chunk of the body. Return false to abort the transfer.
    func write(_ chunk: UnsafeRawBufferPointer) -> Bool
    /// False when the body failed verification: the connection may carry
    /// bytes beyond a lying Content-Length and must not be reused.
    var keepConnection: Bool { get }
}

extension TransferSink {
    var keepConnection: Bool { true }
}

/// Collects a small body in memory, up to a limit (manifests, tokens, tags).
final class CollectingSink: TransferSink {
    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    private(set) var body: [UInt8] = []
    let limit: Int
    private(set) var overflowed = false

    init(limit: Int) { self.limit = limit }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        self.status = status
        self.headers = headers
        body = []
        return true
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard body.count + chunk.count <= limit else {
            overflowed = true
            return false
        }
        body.append(contentsOf: chunk)
        return true
    }
}

/// Passes a 200's head and body to the real sink; any other answer is
/// kept here (its error document, up to 64 KiB) and never reaches it. For
/// a source that may not have the object (the object store, a peer node),
/// tried before the next one with the same sink.
final class OnlySuccessSink: TransferSink {
    let inner: TransferSink
    private(set) var status = 0
    private(set) var errorBody: [UInt8] = []

    init(_ inner: TransferSink) { self.inner = inner }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        self.status = status
        return status == 200 ? inner.begin(status: status, headers: headers) : true
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        if status == 200 { return inner.write(chunk) }
        guard errorBody.count + chunk.count <= 64 * 1024 else { return false }
        errorBody.append(contentsOf: chunk)
        return true
    }

    var keepConnection: Bool { status == 200 ? inner.keepConnection : true }
}

/// A request body read from a file at `offset` (an object-store PUT of a
/// stored blob): libcurl pulls it with `pread`, so nothing is held in memory.
struct UploadBody: Sendable {
    enum Source: Sendable {
        case file(OpenFile, offset: Int64)
        case bytes([UInt8])
    }
    let source: Source
    let length: Int64

    init(file: OpenFile, offset: Int64, length: Int64) {
        source = .file(file, offset: offset)
        self.length = length
    }

    init(bytes: [UInt8]) {
        source = .bytes(bytes)
        length = Int64(bytes.count)
    }
}

/// Per-upstream transfer settings.
struct TransferOptions: Sendable {
    var connectTimeoutMillis = 10_000
    /// Abort when fewer than 1 KiB/s arrive for this long.
    var stallTimeoutSeconds = 30
    var caFile: String?
    var tlsVerify = true
}

/// The final response head of a completed (or sink-aborted) transfer.
struct ResponseHead: Sendable {
    let status: Int
    let headers: HTTPHeaders
}

/// Blocking HTTP transfers on libcurl easy handles, kept in a pool so that
/// connections (and TLS sessions) are reused across requests. Call from
/// worker threads, never from an event loop.
final class CurlClient: Sendable {
    /// An easy handle with the record of the sockets it opened (see
    /// `anch_guard_reuse` in the C shim), as bit patterns in the pool.
    private struct Handle {
        let easy: UnsafeMutableRawPointer
        let sockets: UnsafeMutablePointer<anch_sockets>
    }
    private let idle = Mutex<[(easy: Int, sockets: Int)]>([])
    static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
        return true
    }()

    init() { _ = CurlClient.initialized }

    private func borrow() -> Handle? {
        if let bits = idle.withLock({ $0.popLast() }),
           let easy = UnsafeMutableRawPointer(bitPattern: bits.easy), let sockets = UnsafeMutablePointer<anch_sockets>(bitPattern: bits.sockets) {
            return Handle(easy: easy, sockets: sockets)
        }
        guard let sockets = anch_sockets_new() else { return nil }
        guard let easy = curl_easy_init() else {
            free(sockets)
            return nil
        }
        return Handle(easy: easy, sockets: sockets)
    }

    private func giveBack(_ h: Handle) {
        let keep = idle.withLock { pool -> Bool in
            guard pool.count < 32 else { return false }
            pool.append((Int(bitPattern: UnsafeRawPointer(h.easy)), Int(bitPattern: UnsafeRawPointer(h.sockets))))
            return true
        }
        if !keep { discard(h) }
    }

    /// Closes the handle's connections (through its socket record), then frees both.
    private func discard(_ h: Handle) {
        curl_easy_cleanup(h.easy)
        free(h.sockets)
    }

    /// Performs one request. Success means a final response arrived (any
    /// status); the sink saw its head and body. Failure is a transport error.
    func perform(method: String, url: String, headers: [String], options: TransferOptions, body: UploadBody? = nil, sink: TransferSink) -> Result<ResponseHead, UpstreamError> {
        switch performOnce(method: method, url: url, headers: headers, options: options, body: body, sink: sink) {
        case .refusedReuse:
            // The kept-alive connection held bytes outside any response: it
            // is closed with its handle, and the request goes out once more
            // on a new connection (nothing reached the sink yet).
            Log.warn("upstream connection held unread bytes between responses; closed it", ["url": url])
            switch performOnce(method: method, url: url, headers: headers, options: options, body: body, sink: sink) {
            case .refusedReuse: return .failure(.protocolError("upstream sent bytes outside any response"))
            case .done(let r): return r
            }
        case .done(let r): return r
        }
    }

    private enum Outcome {
        case done(Result<ResponseHead, UpstreamError>)
        case refusedReuse
    }

    private func performOnce(method: String, url: String, headers: [String], options: TransferOptions, body: UploadBody?, sink: TransferSink) -> Outcome {
        guard let handle = borrow() else { return .done(.failure(.protocolError("curl_easy_init failed"))) }
        let h = handle.easy
        curl_easy_reset(h)
        anch_guard_reuse(h, handle.sockets)
        let ctx = TransferContext(sink: sink, handle: h, body: body)
        let ud = Unmanaged.passUnretained(ctx).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for line in headers { list = curl_slist_append(list, line) }
        defer { curl_slist_free_all(list) }

        _ = anch_setopt_str(h, CURLOPT_URL, url)
        _ = anch_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = anch_setopt_long(h, CURLOPT_FOLLOWLOCATION, 1)
        _ = anch_setopt_long(h, CURLOPT_MAXREDIRS, 8)
        // Only http(s) may be followed; curl ≥ 7.58 never sends our
        // Authorization header to another host on redirect.
        _ = anch_setopt_str(h, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = anch_setopt_str(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        _ = anch_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, options.connectTimeoutMillis)
        _ = anch_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1024)
        _ = anch_setopt_long(h, CURLOPT_LOW_SPEED_TIME, options.stallTimeoutSeconds)
        _ = anch_setopt_long(h, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = anch_setopt_long(h, CURLOPT_BUFFERSIZE, 512 * 1024)
        // Each pooled handle keeps at most two idle connections: the pool
        // (≤ 32 handles) bounds the mirror's upstream sockets.
        _ = anch_setopt_long(h, CURLOPT_MAXCONNECTS, 2)
        _ = anch_setopt_str(h, CURLOPT_USERAGENT, "anchorage/\(Version.string)")
        _ = anch_setopt_slist(h, CURLOPT_HTTPHEADER, list)
        if method == "HEAD" {
            _ = anch_setopt_long(h, CURLOPT_NOBODY, 1)
        } else if let body {
            _ = anch_setopt_long(h, CURLOPT_UPLOAD, 1)
            _ = anch_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(body.length))
            _ = anch_setopt_read(h, curlReadCallback)
            _ = anch_setopt_ptr(h, CURLOPT_READDATA, ud)
            if method != "PUT" { _ = anch_setopt_str(h, CURLOPT_CUSTOMREQUEST, method) }
        } else if method != "GET" {
            _ = anch_setopt_str(h, CURLOPT_CUSTOMREQUEST, method)
        }
        if !options.tlsVerify {
            _ = anch_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 0)
            _ = anch_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 0)
        }
        if let ca = options.caFile { _ = anch_setopt_str(h, CURLOPT_CAINFO, ca) }
        _ = anch_setopt_header(h, curlHeaderCallback)
        _ = anch_setopt_ptr(h, CURLOPT_HEADERDATA, ud)
        _ = anch_setopt_write(h, curlWriteCallback)
        _ = anch_setopt_ptr(h, CURLOPT_WRITEDATA, ud)

        let rc = curl_easy_perform(h)
        if rc == CURLE_ABORTED_BY_CALLBACK && handle.sockets.pointee.refused != 0 && !ctx.begun {
            discard(handle)
            return .refusedReuse
        }
        let result: Result<ResponseHead, UpstreamError>
        if rc == CURLE_OK {
            if !ctx.begun { _ = ctx.beginIfNeeded() }
            result = .success(ResponseHead(status: ctx.status, headers: ctx.headers))
        } else if rc == CURLE_WRITE_ERROR && ctx.sinkAborted {
            // The sink said stop (wrong status for it, size limit, …).
            result = .success(ResponseHead(status: ctx.status, headers: ctx.headers))
        } else {
            result = .failure(CurlClient.classify(rc, ctx.errorBuffer))
        }
        // A handle whose transfer broke, or whose body failed verification,
        // may hold a dead or polluted connection: drop it.
        if rc == CURLE_OK && sink.keepConnection { giveBack(handle) } else { discard(handle) }
        return .done(result)
    }

    static func classify(_ rc: CURLcode, _ detail: String) -> UpstreamError {
        let msg = String(cString: curl_easy_strerror(rc))
        switch rc {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .unreachable(msg)
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout(msg)
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING:
            return .unreachable("connection broken: \(msg)")
        case CURLE_TOO_MANY_REDIRECTS:
            return .protocolError("too many redirects")
        case CURLE_PARTIAL_FILE:
            return .protocolError("upstream closed the connection before the whole body")
        default:
            return .protocolError(msg)
        }
    }
}

/// The Swift side of one transfer, reached from libcurl's C callbacks.
private final class TransferContext {
    let sink: TransferSink
    let handle: UnsafeMutableRawPointer
    var headers = HTTPHeaders()
    var status = 0
    var begun = false
    var sinkAborted = false
    var errorBuffer = ""
    let body: UploadBody?
    var sent: Int64 = 0

    init(sink: TransferSink, handle: UnsafeMutableRawPointer, body: UploadBody?) {
        self.sink = sink
        self.handle = handle
        self.body = body
    }

    func beginIfNeeded() -> Bool {
        if begun { return true }
        begun = true
        var code = 0
        _ = anch_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        status = code
        if !sink.begin(status: status, headers: headers) {
            sinkAborted = true
            return false
        }
        return true
    }
}

private let curlHeaderCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ud in
    guard let ptr, let ud else { return 0 }
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud).takeUnretainedValue()
    let n = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        ctx.headers = HTTPHeaders()   // a new response (after a redirect or 100)
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmed(" \t\r\n")
        ctx.headers.add(name, value)
    }
    return n
}

private let curlWriteCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ud in
    guard let ptr, let ud else { return 0 }
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud).takeUnretainedValue()
    let n = size * count
    guard ctx.beginIfNeeded() else { return 0 }
    if !ctx.sink.write(UnsafeRawBufferPointer(start: ptr, count: n)) {
        ctx.sinkAborted = true
        return 0
    }
    return n
}

private let curlReadCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, ud in
    guard let ptr, let ud else { return Int(CURL_READFUNC_ABORT) }
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud).takeUnretainedValue()
    guard let body = ctx.body else { return 0 }
    let want = Int(min(Int64(size * count), body.length - ctx.sent))
    guard want > 0 else { return 0 }
    let (file, offset): (OpenFile, Int64)
    switch body.source {
    case .bytes(let bytes):
        bytes.withUnsafeBytes { all in
            UnsafeMutableRawBufferPointer(start: ptr, count: want).copyMemory(from: UnsafeRawBufferPointer(rebasing: all[Int(ctx.sent)..<Int(ctx.sent) + want]))
        }
        ctx.sent += Int64(want)
        return want
    case .file(let f, let o):
        (file, offset) = (f, o)
    }
    while true {
        switch file.read(at: offset + ctx.sent, into: UnsafeMutableRawBufferPointer(start: ptr, count: want)) {
        case .done(let n):
            ctx.sent += Int64(n)
            return n
        case .interrupted, .wouldBlock:
            continue
        case .failed:
            // The file ended early or could not be read: a short body must not
            // be stored under a name that promises the whole.
            return Int(CURL_READFUNC_ABORT)
        }
    }
}
