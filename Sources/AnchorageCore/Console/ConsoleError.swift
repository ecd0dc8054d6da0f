import Foundation

/// What a console API call can fail with, mapped here (and only here) to
/// its status and JSON body: `{"error": "…"}`.
enum ConsoleError: Error, Equatable {
    case badRequest(String)
    case notFound(String)
    case signInRequired
    case forbidden(String)
    case conflict(String)
    case tooManyRequests
    /// A dependency (the object store) cannot be reached now.
    case unavailable(String)
    case failed(String)

    var status: HTTPStatus {
        switch self {
        case .badRequest: .badRequest
        case .notFound: .notFound
        case .signInRequired: .unauthorized
        case .forbidden: .forbidden
        case .conflict: .conflict
        case .tooManyRequests: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .failed: .internalServerError
        }
    }

    var message: String {
        switch self {
        case .badRequest(let m), .notFound(let m), .forbidden(let m), .conflict(let m), .unavailable(let m), .failed(let m): m
        case .signInRequired: "sign in first"
        case .tooManyRequests: "too many failed sign-ins from this address; try again later"
        }
    }

    init(_ e: RegistryError) {
        switch e.status {
        case .notFound: self = .notFound(e.message)
        case .forbidden: self = .forbidden(e.message)
        case .badRequest: self = .badRequest(e.message)
        case .serviceUnavailable: self = .unavailable(e.message)
        default: self = .failed(e.message)
        }
    }

    var response: HTTPResponse { ConsoleJSON.response(["error": message], status) }
}

/// JSON responses of the console API: never cached, never sniffed.
enum ConsoleJSON {
    static func response(_ obj: Any, _ status: HTTPStatus = .ok, headers extra: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var h = extra
        h.add("Cache-Control", "no-store")
        h.add("X-Content-Type-Options", "nosniff")
        return .json(status, JSONText.encode(obj) + "\n", headers: h)
    }
}
