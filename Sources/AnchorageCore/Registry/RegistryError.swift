import Foundation

/// An error in the distribution spec's format:
/// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":…}]}`.
public struct RegistryError: Error, Sendable, Equatable {
    public enum Code: String, Sendable {
        case nameInvalid = "NAME_INVALID"
        case nameUnknown = "NAME_UNKNOWN"
        case manifestUnknown = "MANIFEST_UNKNOWN"
        case manifestInvalid = "MANIFEST_INVALID"
        case blobUnknown = "BLOB_UNKNOWN"
        case blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
        case blobUploadInvalid = "BLOB_UPLOAD_INVALID"
        case manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
        case sizeInvalid = "SIZE_INVALID"
        case unknown = "UNKNOWN"
        case digestInvalid = "DIGEST_INVALID"
        case unsupported = "UNSUPPORTED"
        case denied = "DENIED"
        case unauthorized = "UNAUTHORIZED"
        case tooManyRequests = "TOOMANYREQUESTS"
        case unavailable = "UNAVAILABLE"
    }

    public let code: Code
    public let status: HTTPStatus
    public let message: String
    public var detail: String?
    public var retryAfter: Int?
    /// The methods a 405's `Allow` names (a pull-through mirror: GET, HEAD).
    public var allow = "GET, HEAD"

    public init(_ code: Code, _ status: HTTPStatus, _ message: String, detail: String? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail
    }

    static func unsupportedMethod(_ m: HTTPMethod) -> RegistryError {
        RegistryError(.unsupported, .methodNotAllowed, "\(m) is not supported: this is a read-only pull-through mirror (push to a [hosted] namespace)")
    }

    /// The error a client sees for an upstream failure, by class.
    static func upstream(_ e: UpstreamError, unknown: Code, upstream: String) -> RegistryError {
        switch e {
        case .notFound:
            return RegistryError(unknown, .notFound, unknown == .blobUnknown ? "blob unknown to the upstream registry" : "manifest unknown to the upstream registry", detail: upstream)
        case .denied(let c):
            return RegistryError(.denied, .forbidden, "upstream \(upstream) denied access (\(c))", detail: upstream)
        case .rateLimited(let after):
            var r = RegistryError(.tooManyRequests, .tooManyRequests, "upstream \(upstream) is rate limiting this mirror", detail: upstream)
            r.retryAfter = after
            return r
        case .tooManyFetches:
            var r = RegistryError(.tooManyRequests, .tooManyRequests, "\(e)", detail: upstream)
            r.retryAfter = 1
            return r
        case .serverError(_, let after):
            // The upstream's Retry-After is passed on: clients back off as it asked.
            var r = RegistryError(.unavailable, .serviceUnavailable, "upstream \(upstream) unavailable: \(e)", detail: upstream)
            r.retryAfter = after
            return r
        default:
            return RegistryError(.unavailable, .serviceUnavailable, "upstream \(upstream) unavailable: \(e)", detail: upstream)
        }
    }

    public var response: HTTPResponse {
        var entry: [String: Any] = ["code": code.rawValue, "message": message]
        entry["detail"] = detail ?? NSNull()
        let body = (try? JSONSerialization.data(withJSONObject: ["errors": [entry]], options: [.sortedKeys])) ?? Data()
        var h = HTTPHeaders()
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        if let retryAfter { h.add("Retry-After", "\(retryAfter)") }
        if status == .methodNotAllowed { h.add("Allow", allow) }
        var r = HTTPResponse.json(status, String(decoding: body, as: UTF8.self), headers: h)
        r.cacheStatus = .error
        return r
    }
}
