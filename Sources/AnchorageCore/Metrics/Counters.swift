import Synchronization

/// Process-wide counters that tests and logs read (and `/metrics` will).
public final class Counters: Sendable {
    public let digestMismatches = Atomic<Int>(0)
    public let staleServed = Atomic<Int>(0)
    public let upstreamBlobFetches = Atomic<Int>(0)
    public let coalescedFollowers = Atomic<Int>(0)

    public init() {}
}
