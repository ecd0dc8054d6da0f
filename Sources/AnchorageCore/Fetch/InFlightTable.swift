import Synchronization

/// Blobs being fetched, by digest: the first request starts the fetch, the
/// rest follow it. Exactly one upstream GET per blob however many clients.
final class InFlightTable: Sendable {
    enum Join {
        case hit                 // committed meanwhile: serve from the store
        case follow(SharedFetch)      // someone is fetching it
        case lead(SharedFetch)        // the caller must start the fetch
        case failed              // could not create the temp file
        case busy                // too many fetches already: not started
    }

    /// At most this many blobs are fetched at once in all, and from one
    /// source: each costs a thread, a temp file and an upstream connection,
    /// and anonymous clients must not be able to exhaust them (or the
    /// descriptors hits need). Followers of a running fetch cost none.
    static let maxFetches = 64
    static let maxFetchesPerSource = 32
    private let running = Mutex<(total: Int, bySource: [String: Int])>((0, [:]))

    /// Storage made at start-up: the first insert otherwise also pays the
    /// runtime's one-time set-up of this dictionary type, inside the first
    /// cold pull's time to first byte.
    private let table = Mutex<[Digest: SharedFetch]>(Dictionary(minimumCapacity: 64))

    func join(_ d: Digest, source: String, store: FileBlobStore, create: () -> SharedFetch?) -> Join {
        table.withLock { t in
            if let e = t[d] { return .follow(e) }
            // Checked under the lock: a fetch commits before it leaves the
            // table, so a miss here plus a file means it just finished.
            if store.contains(d) { return .hit }
            guard start(source) else { return .busy }
            guard let e = create() else {
                finished(source)
                return .failed
            }
            t[d] = e
            return .lead(e)
        }
    }

    /// The leader's fetch of `d` from `source` ended.
    func remove(_ d: Digest, source: String) {
        _ = table.withLock { $0.removeValue(forKey: d) }
        finished(source)
    }

    /// Whether `d` is being fetched now.
    func contains(_ d: Digest) -> Bool { table.withLock { $0[d] != nil } }

    /// Whether a following `join` of an absent digest would be refused as busy.
    func isBusy(_ source: String) -> Bool {
        running.withLock { $0.total >= InFlightTable.maxFetches || $0.bySource[source, default: 0] >= InFlightTable.maxFetchesPerSource }
    }

    private func start(_ source: String) -> Bool {
        running.withLock { r in
            guard r.total < InFlightTable.maxFetches, r.bySource[source, default: 0] < InFlightTable.maxFetchesPerSource else { return false }
            r.total += 1
            r.bySource[source, default: 0] += 1
            return true
        }
    }

    private func finished(_ source: String) {
        running.withLock { r in
            r.total -= 1
            r.bySource[source, default: 0] -= 1
            if r.bySource[source] == 0 { r.bySource.removeValue(forKey: source) }
        }
    }

    var count: Int { table.withLock { $0.count } }
}
