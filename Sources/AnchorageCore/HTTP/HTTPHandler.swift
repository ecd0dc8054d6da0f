/// What the server calls for each request. `handle` runs on an event-loop
/// thread and must not block: anything slow (upstream I/O, hashing) moves to
/// another thread and answers through the responder later.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest, _ responder: HTTPResponder)
}

/// Delivers exactly one response for one request, from any thread.
public struct HTTPResponder: Sendable {
    let connection: Connection
    let generation: Int

    public func respond(_ response: HTTPResponse) {
        let c = connection, g = generation
        if c.loop.inLoopThread {
            c.deliver(response, generation: g)
        } else {
            c.loop.execute { c.deliver(response, generation: g) }
        }
    }
}

/// A handler built from a closure (tests and the benchmark server).
public struct ClosureHandler: HTTPHandler {
    let body: @Sendable (HTTPRequest, HTTPResponder) -> Void
    public init(_ body: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void) { self.body = body }
    public func handle(_ request: HTTPRequest, _ responder: HTTPResponder) { body(request, responder) }
}
