/// The top of the request path: picks the protocol module for a URL.
/// Each module answers only what is its own; this file holds no protocol logic.
struct MirrorRouter: HTTPHandler {
    let registry: RegistryHandler
    let charts: ChartHandler

    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let path = request.path
        if path == "/v2" || path.hasPrefix("/v2/") {
            return registry.handle(request, responder)
        }
        if path.hasPrefix("/charts/") {
            return charts.handle(request, responder)
        }
        switch path {
        case "/healthz":
            guard request.method.isRead else { return responder.respond(methodNotAllowed("GET, HEAD")) }
            responder.respond(.text(.ok, "ok"))
        default:
            responder.respond(.text(.notFound, "not found"))
        }
    }

    private func methodNotAllowed(_ allow: String) -> HTTPResponse {
        var r = HTTPResponse.text(.methodNotAllowed, "method not allowed")
        r.headers.add("Allow", allow)
        return r
    }
}
