import Synchronization

/// Small verified blobs (manifests) kept in memory, so a manifest hit is
/// answered without open/fstat/pread/close. Bounded by bytes; the least
/// recently used entries go first. Content-addressed and re-hashed on the
/// way in, so an entry is right whatever happens to the disk copy later.
final class HotBlobs: Sendable {
    /// What a hit returns.
    struct Hit {
        let bytes: [UInt8]
        let mediaType: String
        /// The digest as text and quoted (its ETag), made once per entry
        /// rather than per hit.
        let digestText: String
        let etag: String
    }

    struct Entry {
        let hit: Hit
        var lastUse: UInt64
    }

    static let maxEntryBytes = 64 * 1024

    private struct State {
        var entries: [Digest: Entry] = [:]
        var total = 0
        var clock: UInt64 = 0
    }

    let budget: Int
    private let state = Mutex(State())

    init(budget: Int) {
        self.budget = budget
    }

    var count: Int { state.withLock { $0.entries.count } }

    func get(_ d: Digest) -> Hit? {
        state.withLock { s in
            guard let i = s.entries.index(forKey: d) else { return nil }   // one lookup per hit
            s.clock &+= 1
            s.entries.values[i].lastUse = s.clock
            return s.entries.values[i].hit
        }
    }

    /// Keeps `bytes` if they hash to `d` and fit; returns whether they did hash to `d`.
    @discardableResult
    func put(_ d: Digest, _ bytes: [UInt8], mediaType: String) -> Bool {
        guard Hasher.digest(bytes, d.algorithm) == d else { return false }
        guard bytes.count <= HotBlobs.maxEntryBytes, bytes.count <= budget else { return true }
        let text = d.description
        state.withLock { s in
            if let old = s.entries[d] { s.total -= old.hit.bytes.count }
            s.clock &+= 1
            s.entries[d] = Entry(hit: Hit(bytes: bytes, mediaType: mediaType, digestText: text, etag: d.etag), lastUse: s.clock)
            s.total += bytes.count
            while s.total > budget, let victim = s.entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                s.total -= victim.value.hit.bytes.count
                s.entries.removeValue(forKey: victim.key)
            }
        }
        return true
    }

    func remove(_ d: Digest) {
        state.withLock { s in
            if let old = s.entries.removeValue(forKey: d) { s.total -= old.hit.bytes.count }
        }
    }
}
