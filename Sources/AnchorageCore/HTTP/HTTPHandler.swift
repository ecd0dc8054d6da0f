import Dispatch

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
    /// What the response will be counted as (`labeled`).
    private(set) var label = RouteLabel.other

    init(connection: Connection, generation: Int) {
        self.connection = connection
        self.generation = generation
    }

    private func stamped(_ response: HTTPResponse) -> HTTPResponse {
        var r = response
        r.label = label
        return r
    }

    /// The same responder, whose response the metrics count as `label`.
    public func labeled(_ label: RouteLabel) -> HTTPResponder {
        var r = self
        r.label = label
        return r
    }

    public func respond(_ response: HTTPResponse) {
        let response = stamped(response)
        let c = connection, g = generation
        if c.loop.inLoopThread {
            c.deliver(response, generation: g)
        } else {
            c.loop.execute { c.deliver(response, generation: g) }
        }
    }

    /// Reads the request's body into `receiver` (on the connection's loop
    /// thread); `receiver.finish` says when it ended. Answer after that, or
    /// earlier to refuse the rest (the connection then closes).
    public func readBody(into receiver: any RequestBodyReceiver) {
        let c = connection, g = generation
        if c.loop.inLoopThread {
            c.beginBody(receiver, generation: g)
        } else {
            c.loop.execute { c.beginBody(receiver, generation: g) }
        }
    }

    /// Like `respond`, but from another thread it then blocks that thread,
    /// at most `timeout` seconds, until the loop has sent the response's head.
    /// For a producer thread that would otherwise keep its core busy while
    /// the woken loop waits for one.
    public func respondYieldingToLoop(_ response: HTTPResponse, timeout: Double) {
        let response = stamped(response)
        let c = connection, g = generation
        if c.loop.inLoopThread { return c.deliver(response, generation: g) }
        let taken = DispatchSemaphore(value: 0)
        c.loop.execute {
            c.deliver(response, generation: g)
            taken.signal()
        }
        _ = taken.wait(timeout: .now() + timeout)
    }
}

/// A handler built from a closure (tests and the benchmark server).
public struct ClosureHandler: HTTPHandler {
    let body: @Sendable (HTTPRequest, HTTPResponder) -> Void
    public init(_ body: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void) { self.body = body }
    public func handle(_ request: HTTPRequest, _ responder: HTTPResponder) { body(request, responder) }
}
