import Foundation

/// One `[registry "NAME"]` upstream: builds `/v2/` URLs, runs the token flow,
/// keeps the breaker. Callers say what they want and what sink takes the body;
/// they never see auth. Blocking: call from worker threads.
final class RegistryUpstream: Sendable {
    let config: RegistryConfig
    let options: TransferOptions
    let client: CurlClient
    let tokens = TokenCache()
    let breaker: CircuitBreaker
    let counters: Counters
    /// Docker Hub puts single-component names under `library/` (decided once:
    /// it is asked on every request).
    let isDockerHub: Bool

    init(config: RegistryConfig, upstream: UpstreamConfig, client: CurlClient, counters: Counters) {
        self.counters = counters
        self.config = config
        isDockerHub = config.name == "docker.io" || config.url.contains("://registry-1.docker.io") || config.url.contains("://index.docker.io")
        var o = TransferOptions()
        o.connectTimeoutMillis = Int(upstream.connectTimeout.milliseconds)
        o.stallTimeoutSeconds = max(1, Int(upstream.stallTimeout.milliseconds / 1000))
        o.caFile = config.caFile
        o.tlsVerify = config.tlsVerify
        options = o
        self.client = client
        breaker = CircuitBreaker(threshold: upstream.breakerThreshold, cooldownMillis: UInt64(upstream.breakerCooldown.milliseconds))
    }

    var name: String { config.name }

    private var basicCredential: String? {
        guard let u = config.username, let p = config.password else { return nil }
        return "Basic " + Data("\(u):\(p)".utf8).base64EncodedString()
    }

    /// `method` `<url>/v2/<path>` with `extraHeaders` (whole header lines);
    /// the sink sees the final response. A 401 with a challenge is answered
    /// (token or Basic) and retried once.
    func request(_ method: String, path: String, repository: RepositoryName?, accept: String?, extraHeaders: [String] = [], sink: TransferSink) -> Result<ResponseHead, UpstreamError> {
        if let refusal = breaker.admit() { return .failure(refusal) }
        let scope = repository.map { "repository:\($0.value):pull" } ?? ""
        let url = "\(config.url)/v2/\(path)"
        var useBasic = false
        for attempt in 0..<2 {
            var headers = extraHeaders
            if let accept { headers.append("Accept: \(accept)") }
            if let t = tokens.get(scope) {
                headers.append("Authorization: Bearer \(t)")
            } else if useBasic, let b = basicCredential {
                headers.append("Authorization: \(b)")
            }
            let gate = AuthGate(inner: sink, swallow401: attempt == 0)
            switch client.perform(method: method, url: url, headers: headers, options: options, sink: gate) {
            case .failure(let e):
                record(e)
                counters.recordUpstream(name, e.kind)
                return .failure(e)
            case .success(let head):
                if let rl = head.headers["RateLimit-Remaining"], let n = Int(rl.prefix { $0.isNumber }) {
                    counters.rateLimitRemaining.withLock { $0[name] = n }
                }
                if head.status == 401, attempt == 0,
                   let challenge = head.headers["WWW-Authenticate"].flatMap(AuthChallenge.parse) {
                    switch challenge.scheme {
                    case "bearer":
                        if case .failure(let e) = fetchToken(challenge, scope: scope) {
                            record(e)
                            return .failure(e)
                        }
                        continue
                    case "basic" where basicCredential != nil:
                        useBasic = true
                        continue
                    default:
                        break
                    }
                }
                record(head.status < 400 ? nil : UpstreamError.from(status: head.status, headers: head.headers))
                counters.recordUpstream(name, head.status < 400 ? "ok" : UpstreamError.from(status: head.status, headers: head.headers).kind)
                return .success(head)
            }
        }
        return .failure(.denied(401))
    }

    /// Feeds the breaker one request's outcome (nil: it succeeded). Every
    /// request that passed `admit()` reports, so a half-open probe always
    /// settles: an outage opens the breaker, a 429 holds it for its
    /// Retry-After, anything else means the upstream answered.
    private func record(_ e: UpstreamError?) {
        switch e {
        case .rateLimited(let after)?: breaker.recordRateLimited(retryAfter: after)
        case let e? where e.isOutage: breaker.recordFailure()
        default: breaker.recordSuccess()
        }
    }

    /// `GET <url>/v2/`, outside the breaker and the metrics, answered or not:
    /// at start-up it opens the connection (and TLS session) the first pull
    /// reuses and runs libcurl's first-use set-up off that pull's path.
    /// Returns the status, or the transport error.
    func warmUp() -> Result<Int, UpstreamError> {
        let sink = CollectingSink(limit: 64 * 1024)
        return client.perform(method: "GET", url: "\(config.url)/v2/", headers: [], options: options, sink: sink).map(\.status)
    }

    /// The registry token flow: GET realm?service=…&scope=…, anonymously or
    /// with the configured credentials as Basic.
    private func fetchToken(_ c: AuthChallenge, scope: String) -> Result<Void, UpstreamError> {
        guard let realm = c.params["realm"], realm.hasPrefix("http://") || realm.hasPrefix("https://") else {
            return .failure(.protocolError("bearer challenge without a usable realm"))
        }
        var query: [String] = []
        if let service = c.params["service"] { query.append("service=\(urlQueryEscape(service))") }
        let wanted = c.params["scope"] ?? scope
        if !wanted.isEmpty { query.append("scope=\(urlQueryEscape(wanted))") }
        let url = realm + (query.isEmpty ? "" : (realm.contains("?") ? "&" : "?") + query.joined(separator: "&"))
        var headers: [String] = []
        if let b = basicCredential { headers.append("Authorization: \(b)") }
        let sink = CollectingSink(limit: 1 << 20)
        switch client.perform(method: "GET", url: url, headers: headers, options: options, sink: sink) {
        case .failure(let e):
            return .failure(e)
        case .success(let head):
            guard head.status == 200 else {
                return .failure(head.status == 401 || head.status == 403 ? .denied(head.status) : UpstreamError.from(status: head.status, headers: head.headers))
            }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(sink.body)) as? [String: Any],
                  let token = (obj["token"] as? String) ?? (obj["access_token"] as? String), !token.isEmpty,
                  token.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                return .failure(.protocolError("token endpoint returned no usable token"))
            }
            let expires = (obj["expires_in"] as? Int) ?? 60
            tokens.put(scope, token: token, expiresIn: expires)
            return .success(())
        }
    }
}

/// Hides a first 401 from the real sink (it is answered and retried).
private final class AuthGate: TransferSink {
    let inner: TransferSink
    let swallow401: Bool
    var swallowing = false

    init(inner: TransferSink, swallow401: Bool) {
        self.inner = inner
        self.swallow401 = swallow401
    }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        if status == 401 && swallow401 {
            swallowing = true
            return false
        }
        return inner.begin(status: status, headers: headers)
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        swallowing ? false : inner.write(chunk)
    }

    var keepConnection: Bool { inner.keepConnection }
}

func urlQueryEscape(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case 48...57, 65...90, 97...122, 45, 46, 95, 126, 58, 47:
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            out += String(format: "%%%02X", b)
        }
    }
    return out
}
