import Foundation
import Glibc
import Synchronization

/// LRU accounting by bytes over the blob store.
///
/// Kept in memory (digest → size, last use). Last use persists as the file's
/// mtime, written at most once a minute per entry, so restarts keep the order
/// without a journal. Start-up does not wait for it: `startScan` walks the
/// directory on a background thread while serving begins; eviction waits for
/// the scan to finish so it never decides on a partial picture.
///
/// Eviction unlinks: a response that already opened a file keeps reading it
/// (Linux keeps the inode). Blobs being fetched are not entries yet; they
/// reserve room as their bytes arrive, so `max_size` holds while they run.
/// Digests in the pin sets (`PinSet`, written by sync) are never evicted.
public final class CacheIndex: Sendable {
    struct Entry {
        var size: Int64
        var lastUse: Int64       // unix ms
        var persistedUse: Int64  // what the file's mtime says
    }

    struct State {
        var entries: [Digest: Entry] = [:]
        var total: Int64 = 0
        var reserved: Int64 = 0
        var scanned = false
        var pinned = Set<Digest>()
        var pinSignature: Int64 = -1
    }

    public let maxSize: Int64
    public var lowWater: Int64 { maxSize / 10 * 9 }
    private let state = Mutex(State())
    let layout: CacheLayout
    public let evictions = Atomic<Int>(0)
    public let evictedBytes = Atomic<Int>(0)

    /// False for content that is accounted but never evicted (hosted).
    let evicting: Bool

    public init(layout: CacheLayout, maxSize: Int64, evicting: Bool = true) {
        self.layout = layout
        self.maxSize = maxSize
        self.evicting = evicting
    }

    public var totalBytes: Int64 { state.withLock { $0.total } }
    public var entryCount: Int { state.withLock { $0.entries.count } }
    public var isScanned: Bool { state.withLock { $0.scanned } }

    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Marks a hit. Persists the time as mtime when the stored one is over a minute old.
    /// A file this process has not counted yet (committed by another process
    /// sharing the cache, e.g. `anchorage sync`) is adopted here.
    func touch(_ d: Digest, path: @autoclosure () -> String) {
        let now = CacheIndex.nowMillis()
        // The common case (a known entry) takes one lock and one lookup: this
        // runs on every cache hit.
        var persist = state.withLock { s -> Bool? in
            guard let i = s.entries.index(forKey: d) else { return s.scanned ? nil : false }
            s.entries.values[i].lastUse = now
            guard now - s.entries.values[i].persistedUse > 60_000 else { return false }
            s.entries.values[i].persistedUse = now
            return true
        }
        if persist == nil {
            // Not indexed although the scan is done: adopt it (see above).
            var st = stat()
            persist = false
            if stat(path(), &st) == 0 {
                let size = Int64(st.st_size)
                state.withLock { s in
                    guard s.entries[d] == nil else { return }
                    s.entries[d] = Entry(size: size, lastUse: now, persistedUse: now)
                    s.total += size
                }
            }
        }
        if persist == true {
            let omit = (1 << 30) - 2   // UTIME_OMIT: leave atime alone
            var times = [timespec(tv_sec: 0, tv_nsec: omit), timespec(tv_sec: Int(now / 1000), tv_nsec: Int(now % 1000) * 1_000_000)]
            utimensat(AT_FDCWD, path(), &times, 0)
        }
    }

    func add(_ d: Digest, size: Int64) {
        let now = CacheIndex.nowMillis()
        state.withLock { s in
            if let old = s.entries[d] { s.total -= old.size }
            s.entries[d] = Entry(size: size, lastUse: now, persistedUse: now)
            s.total += size
        }
        evictIfNeeded()
    }

    /// Whether a blob of `bytes` can be cached at all (it alone is not
    /// larger than `max_size`).
    func fits(_ bytes: Int64) -> Bool { bytes <= maxSize }

    /// Room for `bytes` more of a blob being fetched: evicts so that
    /// committed plus reserved bytes stay within `max_size`.
    func reserve(_ bytes: Int64) {
        state.withLock { $0.reserved += bytes }
        evictIfNeeded()
    }

    func release(_ bytes: Int64) {
        state.withLock { $0.reserved -= bytes }
    }

    func remove(_ d: Digest) {
        state.withLock { s in
            if let e = s.entries.removeValue(forKey: d) { s.total -= e.size }
        }
    }

    /// Evicts least recently used entries down to the low-water mark once
    /// committed + reserved bytes exceed `max_size`.
    public func evictIfNeeded() {
        evict(downTo: nil)
    }

    /// Evicts down to `target` bytes now (or, with nil, to the low-water mark
    /// when over budget). Returns the bytes removed.
    /// Re-reads the pin sets when `pins/` changed (a sync, here or in another process).
    func refreshPins() {
        let sig = PinSet.signature(layout)
        guard state.withLock({ $0.pinSignature != sig }) else { return }
        let pins = PinSet.load(layout)
        state.withLock { s in
            s.pinned = pins
            s.pinSignature = sig
        }
    }

    public var pinnedBytes: Int64 {
        refreshPins()
        return state.withLock { s in s.pinned.reduce(0) { $0 + (s.entries[$1]?.size ?? 0) } }
    }

    @discardableResult
    public func evict(downTo target: Int64?) -> Int64 {
        guard evicting else { return 0 }
        refreshPins()
        let victims = state.withLock { s -> [(Digest, Int64)] in
            guard s.scanned else { return [] }
            let goal: Int64
            if let target {
                goal = target
            } else {
                guard s.total + s.reserved > maxSize else { return [] }
                goal = lowWater
            }
            guard s.total + s.reserved > goal else { return [] }
            var out: [(Digest, Int64)] = []
            var total = s.total + s.reserved
            // Pinned entries count in the total but are never chosen.
            for (d, e) in s.entries.filter({ !s.pinned.contains($0.key) }).sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
                if total <= goal { break }
                out.append((d, e.size))
                total -= e.size
                s.entries.removeValue(forKey: d)
                s.total -= e.size
            }
            return out
        }
        var freed: Int64 = 0
        for (d, size) in victims {
            unlink(layout.blob(d))
            unlink(layout.mediaType(d))
            freed += size
            Log.info("evicted", ["digest": d.description, "bytes": "\(size)"])
        }
        evictions.add(victims.count, ordering: .relaxed)
        evictedBytes.add(Int(freed), ordering: .relaxed)
        return freed
    }

    /// Walks `blobs/` on a background thread, adopting every file as an
    /// entry with its size and mtime, then enables eviction.
    public func startScan() {
        let t = Thread { [self] in scanNow() }
        t.name = "anchorage-cache-scan"
        t.start()
    }

    public func scanNow(quiet: Bool = false) {
        var found: [Digest: Entry] = [:]
        layout.forEachBlob { digest, path in
            guard let d = digest else { return }
            var st = stat()
            guard stat(path, &st) == 0 else { return }
            let mtime = Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
            found[d] = Entry(size: Int64(st.st_size), lastUse: mtime, persistedUse: mtime)
        }
        state.withLock { s in
            // Entries added while scanning are newer; keep them.
            for (d, e) in found where s.entries[d] == nil {
                s.entries[d] = e
                s.total += e.size
            }
            s.scanned = true
        }
        if !quiet { Log.info("cache index loaded", ["entries": "\(found.count)", "bytes": "\(totalBytes)"]) }
        if !quiet { evictIfNeeded() }
    }
}
