/// The top of the request path: picks the protocol module for a URL.
/// Each module answers only what is its own; this file holds no protocol logic.
struct MirrorRouter: HTTPHandler {
    let registry: RegistryHandler
    let charts: ChartHandler
    let ops: OpsHandler
    let console: ConsoleHandler
    let gate: AccessGate
    let pool: WorkerPool

    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        gate.admit(request, responder, pool: pool) { user in
            guard let user else { return route(request, responder) }
            var admitted = request
            admitted.user = user
            route(admitted, responder)
        }
    }

    private func route(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let path = request.path
        if path == "/v2" || path.hasPrefix("/v2/") {
            return registry.handle(request, responder)
        }
        if path.hasPrefix("/charts/") {
            return charts.handle(request, responder)
        }
        if ops.handle(request, responder) || console.handle(request, responder) { return }
        responder.respond(.text(.notFound, "not found"))
    }
}
