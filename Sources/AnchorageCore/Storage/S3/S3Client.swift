import Foundation

/// Requests to one S3-compatible bucket, signed with SigV4 and sent through
/// the pooled libcurl handles. Object keys are given relative to the
/// configured prefix.
final class S3Client: Sendable {
    let config: StorageConfig.S3
    let signer: SigV4Signer
    private let client = CurlClient()
    private let options: TransferOptions
    private let scheme: String
    /// host[:port] as sent in `Host` (with the bucket in front when virtual).
    private let host: String
    /// The path before a key: "/BUCKET/" (path style) or "/" (virtual).
    private let base: String

    init?(_ config: StorageConfig.S3) {
        guard let u = URLComponents(string: config.endpoint), let scheme = u.scheme, let h = u.host, !h.isEmpty else { return nil }
        self.config = config
        signer = SigV4Signer(accessKey: config.accessKey, secretKey: config.secretKey, region: config.region, service: "s3")
        var o = TransferOptions()
        o.caFile = config.caFile
        o.tlsVerify = config.tlsVerify
        options = o
        self.scheme = scheme
        let hostPort = h + (u.port.map { ":\($0)" } ?? "")
        switch config.addressing {
        case .path:
            host = hostPort
            base = "/\(config.bucket)/"
        case .virtual:
            host = "\(config.bucket).\(hostPort)"
            base = "/"
        }
    }

    /// Where an object is, for messages.
    func describe(_ key: String) -> String { "\(scheme)://\(host)\(base)\(config.prefix)\(key)" }

    /// One signed request. `key` nil addresses the bucket itself. The body
    /// is signed by its hash when given (S3 then checks it), else sent as
    /// UNSIGNED-PAYLOAD.
    func request(_ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                 payloadHash: String? = nil, body: UploadBody? = nil, sink: TransferSink, now: Date = Date()) -> Result<ResponseHead, UpstreamError> {
        let path = key.map { base + config.prefix + $0 } ?? String(base.dropLast()).ifEmpty("/")
        let date = SigV4Date(now)
        let hash = payloadHash ?? (body == nil && method != "GET" && method != "HEAD" ? SigV4Signer.emptyPayload : SigV4Signer.unsignedPayload)
        let headers = [("Host", host), ("x-amz-date", date.stamp), ("x-amz-content-sha256", hash)] + extra
        let signed = signer.sign(method: method, path: path, query: query, headers: headers, payloadHash: hash, date: date)
        let q = SigV4Signer.canonicalQuery(query)
        let url = "\(scheme)://\(host)\(SigV4Signer.encode(path, keepSlash: true))\(q.isEmpty ? "" : "?" + q)"
        // No 100-continue round trip before a body: the request is signed
        // and small failures cost one wasted upload at most.
        let lines = signed.headers.map { "\($0.0): \($0.1)" } + ["Expect:"]
        return client.perform(method: method, url: url, headers: lines, options: options, body: body, sink: sink)
    }

    /// A presigned GET URL for `key`, valid for `expires` seconds.
    func presignedURL(_ key: String, expires: Int, now: Date = Date()) -> String {
        let path = base + config.prefix + key
        let q = signer.presignedQuery(method: "GET", path: path, host: host, expires: expires, date: SigV4Date(now))
        return "\(scheme)://\(host)\(SigV4Signer.encode(path, keepSlash: true))?\(q)"
    }

    /// S3's error document: `<Error><Code>…</Code><Message>…</Message>`.
    static func errorText(status: Int, body: [UInt8]) -> String {
        let text = String(decoding: body, as: UTF8.self)
        func element(_ name: String) -> String? { S3XML.elements(name, in: text).first.map(String.init) }
        switch (element("Code"), element("Message")) {
        case let (code?, message?): return "\(status) \(code): \(message)"
        case let (code?, nil): return "\(status) \(code)"
        default: return "HTTP \(status)"
        }
    }
}

/// The few elements read from S3's XML answers (error documents, listings,
/// multipart replies): flat text between tags, no general parser needed.
enum S3XML {
    /// The text of every `<name>…</name>` in `xml` (not nested in itself).
    static func elements(_ name: String, in xml: some StringProtocol) -> [Substring] {
        var out: [Substring] = []
        var rest = Substring(xml)
        while let open = rest.range(of: "<\(name)>"), let close = rest.range(of: "</\(name)>", range: open.upperBound..<rest.endIndex) {
            out.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// XML's five entities decoded (keys and ETags may carry them).
    static func unescape(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        return s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }
}

private extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
