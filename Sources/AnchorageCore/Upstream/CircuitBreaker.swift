import Synchronization

/// Per-upstream breaker: after `threshold` consecutive outage-class failures
/// the upstream is not asked for `cooldown`; then one request goes through
/// as a probe (half-open) and its outcome closes or re-opens the breaker. A
/// probe whose outcome never comes (a caller that gave up) is replaced after
/// another `cooldown`, so the breaker cannot stay half-open. A 429 is not
/// an outage: it holds requests back for its `Retry-After` only. A down
/// upstream then costs clients no waiting: cached content is served at once.
final class CircuitBreaker: Sendable {
    enum State: Equatable { case closed, open(until: UInt64), halfOpen(probeSince: UInt64) }

    private struct S {
        var failures = 0
        var state = State.closed
        /// The open state is a 429's Retry-After, not an outage.
        var rateLimited = false
    }
    private let s = Mutex(S())
    let threshold: Int
    let cooldownMillis: UInt64

    init(threshold: Int, cooldownMillis: UInt64) {
        self.threshold = max(1, threshold)
        self.cooldownMillis = cooldownMillis
    }

    /// Nil when a request may go upstream now (while open, the caller
    /// becomes the probe: call it only right before the request); else why
    /// not: marked down, or rate limited with the seconds left.
    func admit() -> UpstreamError? {
        let now = monotonicMillis()
        return s.withLock { s in
            if let refusal = Self.refusal(s, now: now, cooldown: cooldownMillis) { return refusal }
            if s.state != .closed { s.state = .halfOpen(probeSince: now) }
            return nil
        }
    }

    /// What `admit()` would answer now, without taking the probe.
    var refusal: UpstreamError? {
        let now = monotonicMillis()
        return s.withLock { Self.refusal($0, now: now, cooldown: cooldownMillis) }
    }

    private static func refusal(_ s: S, now: UInt64, cooldown: UInt64) -> UpstreamError? {
        guard !admits(s.state, now: now, cooldown: cooldown) else { return nil }
        if s.rateLimited, case .open(let until) = s.state {
            return .rateLimited(retryAfter: Int((until - now + 999) / 1000))
        }
        return .circuitOpen
    }

    private static func admits(_ state: State, now: UInt64, cooldown: UInt64) -> Bool {
        switch state {
        case .closed: true
        case .open(let until): now >= until
        case .halfOpen(let since): now >= since + cooldown   // the probe was lost
        }
    }

    /// The upstream answered (whatever it said, short of an outage).
    func recordSuccess() {
        s.withLock { $0 = S() }
    }

    func recordFailure() {
        let now = monotonicMillis()
        s.withLock { s in
            s.failures += 1
            s.rateLimited = false
            if case .halfOpen = s.state {
                s.state = .open(until: now + cooldownMillis)
            } else if s.failures >= threshold {
                s.state = .open(until: now + cooldownMillis)
            }
        }
    }

    /// A 429: hold requests back for `retryAfter` seconds (none given: ask
    /// again at once); consecutive outage failures are not counted.
    func recordRateLimited(retryAfter: Int?) {
        let now = monotonicMillis()
        s.withLock { s in
            s.failures = 0
            if let seconds = retryAfter, seconds > 0 {
                s.state = .open(until: now + UInt64(min(seconds, 3600)) * 1000)
                s.rateLimited = true
            } else {
                s = S()
            }
        }
    }

    /// "closed", "open" or "half-open" (one probe request allowed through).
    var stateName: String {
        let now = monotonicMillis()
        return s.withLock {
            switch $0.state {
            case .closed: "closed"
            case .open(let until): now >= until ? "half-open" : "open"
            case .halfOpen: "half-open"
            }
        }
    }

    var isOpen: Bool {
        s.withLock { if case .closed = $0.state { return false } else { return true } }
    }
}
