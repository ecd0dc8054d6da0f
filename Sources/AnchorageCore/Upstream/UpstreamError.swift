import Foundation

/// Why an upstream request failed, classified once so that the freshness
/// policy (stale-if-error, circuit breaker, negative cache) reads as a table.
public enum UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreachable(String)            // DNS failure, connection refused or reset
    case timeout(String)                // connect or low-speed timeout
    case denied(Int)                    // 401/403 after the auth flow
    case notFound                       // 404
    case rateLimited(retryAfter: Int?)  // 429
    case serverError(Int, retryAfter: Int?)  // 5xx
    case protocolError(String)          // redirect loop, short body, bad token response, …
    case circuitOpen                    // recent failures: not asked at all
    case tooManyFetches                 // this mirror's own limit on concurrent fetches
    case digestMismatch(expected: String, actual: String)

    public var description: String {
        switch self {
        case .unreachable(let s): "upstream unreachable: \(s)"
        case .timeout(let s): "upstream timed out: \(s)"
        case .denied(let c): "upstream denied access (\(c))"
        case .notFound: "not found upstream"
        case .rateLimited(let r): "upstream rate limit (429\(r.map { ", retry after \($0)s" } ?? ""))"
        case .serverError(let c, _): "upstream error \(c)"
        case .protocolError(let s): "upstream protocol error: \(s)"
        case .circuitOpen: "upstream marked down after repeated failures"
        case .tooManyFetches: "too many blobs are being fetched at once; retry shortly"
        case .digestMismatch(let e, let a): "upstream sent content with digest \(a), expected \(e)"
        }
    }

    /// Errors that say the upstream is unhealthy: they open the breaker and
    /// allow serving a stale cached copy.
    public var isOutage: Bool {
        switch self {
        case .unreachable, .timeout, .serverError, .rateLimited, .circuitOpen: true
        default: false
        }
    }

    /// The class name used in logs and metrics.
    public var kind: String {
        switch self {
        case .unreachable: "unreachable"
        case .timeout: "timeout"
        case .denied: "denied"
        case .notFound: "not_found"
        case .rateLimited: "rate_limited"
        case .serverError: "server_error"
        case .protocolError: "protocol_error"
        case .circuitOpen: "circuit_open"
        case .tooManyFetches: "too_many_fetches"
        case .digestMismatch: "digest_mismatch"
        }
    }

    /// The class of a final non-2xx status.
    static func from(status: Int, headers: HTTPHeaders) -> UpstreamError {
        switch status {
        case 401, 403: return .denied(status)
        case 404: return .notFound
        case 429: return .rateLimited(retryAfter: retryAfter(headers["Retry-After"]))
        case 500...599: return .serverError(status, retryAfter: retryAfter(headers["Retry-After"]))
        default: return .protocolError("unexpected status \(status)")
        }
    }

    /// A `Retry-After` value in seconds from now: delay-seconds, or an
    /// HTTP-date (RFC 9110 §10.2.3); a date in the past is 0.
    static func retryAfter(_ value: String?, now: Date = Date()) -> Int? {
        guard let v = value?.trimmed(" ") else { return nil }
        if let n = Int(v) { return n >= 0 ? n : nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = f.date(from: v) else { return nil }
        return max(0, Int(date.timeIntervalSince(now).rounded(.up)))
    }
}
