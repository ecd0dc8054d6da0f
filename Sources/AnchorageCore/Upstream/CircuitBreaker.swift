import Synchronization

/// Per-upstream breaker: after `threshold` consecutive outage-class failures
/// the upstream is not asked for `cooldown`; then one probe is let through
/// (half-open) and its outcome closes or re-opens the breaker. A down upstream
/// then costs clients no waiting: cached content is served at once.
final class CircuitBreaker: Sendable {
    enum State: Equatable { case closed, open(until: UInt64), halfOpen }

    private struct S { var failures = 0; var state = State.closed }
    private let s = Mutex(S())
    let threshold: Int
    let cooldownMillis: UInt64

    init(threshold: Int, cooldownMillis: UInt64) {
        self.threshold = max(1, threshold)
        self.cooldownMillis = cooldownMillis
    }

    /// Whether a request may go upstream now.
    func allow() -> Bool {
        let now = monotonicMillis()
        return s.withLock { s in
            switch s.state {
            case .closed: return true
            case .halfOpen: return false   // the probe is out
            case .open(let until):
                guard now >= until else { return false }
                s.state = .halfOpen
                return true
            }
        }
    }

    func recordSuccess() {
        s.withLock { $0 = S() }
    }

    func recordFailure() {
        let now = monotonicMillis()
        s.withLock { s in
            s.failures += 1
            if s.state == .halfOpen || s.failures >= threshold {
                s.state = .open(until: now + cooldownMillis)
            }
        }
    }

    var isOpen: Bool {
        s.withLock { if case .closed = $0.state { return false } else { return true } }
    }
}
