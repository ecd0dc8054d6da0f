import Synchronization

/// Blobs being fetched, by digest: the first request starts the fetch, the
/// rest follow it. Exactly one upstream GET per blob however many clients.
final class InFlightTable: Sendable {
    enum Join {
        case hit                 // committed meanwhile: serve from the store
        case follow(SharedFetch)      // someone is fetching it
        case lead(SharedFetch)        // the caller must start the fetch
        case failed              // could not create the temp file
    }

    /// Storage made at start-up: the first insert otherwise also pays the
    /// runtime's one-time set-up of this dictionary type, inside the first
    /// cold pull's time to first byte.
    private let table = Mutex<[Digest: SharedFetch]>(Dictionary(minimumCapacity: 64))

    func join(_ d: Digest, store: FileBlobStore, create: () -> SharedFetch?) -> Join {
        table.withLock { t in
            if let e = t[d] { return .follow(e) }
            // Checked under the lock: an ingest commits before it leaves the
            // table, so a miss here plus a file means it just finished.
            if store.contains(d) { return .hit }
            guard let e = create() else { return .failed }
            t[d] = e
            return .lead(e)
        }
    }

    func remove(_ d: Digest) {
        _ = table.withLock { $0.removeValue(forKey: d) }
    }

    var count: Int { table.withLock { $0.count } }
}
