import Foundation
import Glibc
import Synchronization

/// One blob being fetched from an upstream into the cache, shared by every
/// client that asks for it meanwhile (single flight).
///
/// Two stages, so receiving and hashing/writing use both cores: the fetch
/// thread copies libcurl's chunks into one of four 1 MiB spools; a full spool
/// goes to this ingest's serial disk stage, which hashes it, `pwrite`s it to
/// a temp file, publishes the new length and wakes waiting connections, which
/// send from the same temp file. The last `tailHold` bytes are withheld
/// from every reader until the digest and length have been checked: on a
/// match the file is renamed into the store and the tail released; on a
/// mismatch the temp file is deleted and every reader is cut off, so no
/// client ever holds a complete body with the wrong digest.
///
///     starting ──head 200──▶ streaming ──digest ok──▶ verified
///        └──────────── error / mismatch ─────────────▶ failed
final class Ingest: GrowingSource, TransferSink, @unchecked Sendable {
    enum Phase { case starting, streaming, verified, failed(UpstreamError) }

    private struct State {
        var phase = Phase.starting
        var length: Int64 = -1
        var written: Int64 = 0
        var headWaiters: [@Sendable (Result<Int64, UpstreamError>) -> Void] = []
        var dataWaiters: [(offset: Int64, wake: @Sendable () -> Void)] = []
        var doneWaiters: [@Sendable (UpstreamError?) -> Void] = []
        /// Failed, or verified and committed: `doneWaiters` have run.
        var finished = false
    }

    static let tailHold: Int64 = 64 * 1024

    let digest: Digest
    let fd: Int32
    let tempPath: String
    let upstreamName: String
    private let store: BlobStore
    private let hasher: Hasher             // disk stage; the fetch thread once it is drained
    private var upstreamStatus = 0          // fetch thread only
    private var upstreamHeaders = HTTPHeaders()
    private var reserved: Int64 = 0         // fetch thread only
    private var cacheable = true            // fetch thread only
    // libcurl's chunks are gathered in a spool and handed to the disk stage
    // in one go, so one hash call, one pwrite and one wake-up serve up to
    // 1 MiB. The first hand-off comes at 16 KiB to keep the first byte early.
    // Four spools rather than two: the stages stall less on each other
    // (cold 1 GiB 1018-1047 -> 1042-1098 MB/s; eight gave little more).
    static let spoolCount = 4
    private let spools = (0..<Ingest.spoolCount).map { _ in
        UnsafeMutableRawBufferPointer.allocate(byteCount: Ingest.spoolCapacity, alignment: 4096)
    }
    private var current = 0                 // fetch thread: the spool being filled
    private var spooled = 0                 // fetch thread: bytes in it
    private var received: Int64 = 0         // fetch thread: bytes taken from libcurl
    private var flushAt = 16 * 1024
    private var chunks = 0
    private var drained = false             // fetch thread: disk stage finished
    /// The disk stage: hashes and writes spools in order.
    private let disk = DispatchQueue(label: "anchorage.ingest")
    /// Spools neither being filled nor still in the disk stage.
    private let spareSpool = DispatchSemaphore(value: Ingest.spoolCount - 1)
    private var flushed: Int64 = 0          // disk stage only
    private var evictedForSpace = false     // disk stage only
    private let diskFailed = Atomic<Bool>(false)
    /// The content's digest, settled once the disk stage has drained (fetch thread).
    private var computed: Digest?
    static let spoolCapacity = 1 << 20
    private let state = Mutex(State())
    let counters: Counters

    init?(digest: Digest, store: BlobStore, upstreamName: String, counters: Counters) {
        self.digest = digest
        self.store = store
        self.upstreamName = upstreamName
        self.counters = counters
        tempPath = store.layout.newTempPath()
        fd = open(tempPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            Log.error("cannot create temp file", ["path": tempPath, "error": String(cString: strerror(errno))])
            return nil
        }
        hasher = Hasher(digest.algorithm)
    }

    deinit {
        close(fd)
        for s in spools { s.deallocate() }
    }

    // MARK: GrowingSource (any thread)

    var length: Int64 { state.withLock { $0.length } }

    func readable() -> Int64? {
        state.withLock { s in
            switch s.phase {
            case .failed: return nil
            case .verified: return s.written
            case .starting: return 0
            case .streaming: return max(0, min(s.written, s.length - min(s.length, Ingest.tailHold)))
            }
        }
    }

    func notifyWhenReadable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            switch s.phase {
            case .failed, .verified: return false
            case .starting, .streaming:
                let r = max(0, min(s.written, s.length - min(s.length, Ingest.tailHold)))
                if r > offset { return false }
                s.dataWaiters.append((offset, wake))
                return true
            }
        }
    }

    /// Calls back once the upstream's length is known (or the fetch failed).
    func whenHeadKnown(_ cb: @escaping @Sendable (Result<Int64, UpstreamError>) -> Void) {
        let now: Result<Int64, UpstreamError>? = state.withLock { s in
            switch s.phase {
            case .starting:
                s.headWaiters.append(cb)
                return nil
            case .failed(let e): return .failure(e)
            case .streaming, .verified: return .success(s.length)
            }
        }
        if let now { cb(now) }
    }

    /// Calls back once the ingest is verified (nil) or failed (the error).
    func whenFinished(_ cb: @escaping @Sendable (UpstreamError?) -> Void) {
        let now: UpstreamError?? = state.withLock { s in
            guard s.finished else {
                s.doneWaiters.append(cb)
                return nil
            }
            if case .failed(let e) = s.phase { return .some(e) }
            return .some(nil)
        }
        if let now { cb(now) }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    // MARK: TransferSink (fetch thread)

    /// A body that did not hash right may have come with a lying length:
    /// libcurl asks right after the transfer, so this drains the disk stage.
    var keepConnection: Bool {
        drain()
        return computed == nil || computed == digest
    }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        upstreamStatus = status
        upstreamHeaders = headers
        guard status == 200 else { return false }
        guard let cl = headers["Content-Length"].flatMap({ Int64($0) }), cl >= 0 else {
            fail(.protocolError("blob response without Content-Length"))
            return false
        }
        cacheable = store.index.reserve(cl)
        if cacheable { reserved = cl }
        let waiters = state.withLock { s -> [@Sendable (Result<Int64, UpstreamError>) -> Void] in
            s.length = cl
            s.phase = .streaming
            defer { s.headWaiters = [] }
            return s.headWaiters
        }
        for w in waiters { w(.success(cl)) }
        return true
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        let length = state.withLock { $0.length }
        guard received + Int64(chunk.count) <= length else {
            fail(.protocolError("upstream sent more bytes than its Content-Length"))
            return false
        }
        guard !diskFailed.load(ordering: .acquiring) else { return false }
        chunks += 1
        received += Int64(chunk.count)
        var offset = 0
        while offset < chunk.count {
            let n = min(chunk.count - offset, Ingest.spoolCapacity - spooled)
            (spools[current].baseAddress! + spooled).copyMemory(from: chunk.baseAddress! + offset, byteCount: n)
            spooled += n
            offset += n
            if spooled >= flushAt || spooled == Ingest.spoolCapacity {
                handOff()
                flushAt = min(flushAt * 2, Ingest.spoolCapacity)
            }
        }
        return true
    }

    /// Gives the filled spool to the disk stage and switches to the other,
    /// waiting for the stage to be done with it (backpressure on the fetch).
    private func handOff() {
        guard spooled > 0 else { return }
        spareSpool.wait()
        let index = current, count = spooled
        disk.async { [self] in
            if !diskFailed.load(ordering: .acquiring) {
                let buffer = UnsafeRawBufferPointer(rebasing: spools[index][0..<count])
                hasher.update(buffer)
                if !writeToDisk(buffer) { diskFailed.store(true, ordering: .releasing) }
            }
            spareSpool.signal()
        }
        current = (current + 1) % Ingest.spoolCount
        spooled = 0
    }

    /// After the last chunk (fetch thread): hands off the rest, waits for the
    /// disk stage, and settles the digest if every byte arrived.
    private func drain() {
        guard !drained else { return }
        drained = true
        handOff()
        disk.sync {}
        if !diskFailed.load(ordering: .acquiring), received == state.withLock({ $0.length }) {
            computed = hasher.finish()
        }
    }

    /// Disk stage: writes a spool to the temp file and publishes the new length.
    private func writeToDisk(_ buffer: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(flushed) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                // Disk full: make room once by evicting least recently used
                // (unpinned) entries, then go on; otherwise fail cleanly below.
                if errno == ENOSPC || errno == EDQUOT, !evictedForSpace {
                    evictedForSpace = true
                    let remaining = state.withLock { $0.length } - flushed
                    let freed = store.index.evict(downTo: max(0, store.index.totalBytes - remaining))
                    Log.warn("cache disk full: evicted to make room", ["digest": digest.description, "needed": "\(remaining)", "freed": "\(freed)"])
                    if freed > 0 { continue }
                }
                let why = String(cString: strerror(errno))
                Log.error("cache write failed; transfer abandoned, nothing cached", ["digest": digest.description, "error": why])
                fail(.protocolError("cache write failed: \(why)"))
                return false
            }
            done += n
        }
        flushed += Int64(buffer.count)
        publish(written: flushed)
        return true
    }

    private func publish(written: Int64) {
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.written = written
            let r = max(0, min(s.written, s.length - min(s.length, Ingest.tailHold)))
            var ready: [@Sendable () -> Void] = []
            s.dataWaiters.removeAll { w in
                if w.offset < r { ready.append(w.wake); return true }
                return false
            }
            return ready
        }
        for w in wake { w() }
    }

    /// Called by the fetcher when the transfer ended: verify and commit, or fail.
    func finish(_ result: Result<ResponseHead, UpstreamError>) {
        defer { if reserved > 0 { store.index.release(reserved) } }
        if case .failed = state.withLock({ $0.phase }) { return }
        switch result {
        case .failure(let e):
            fail(e)
            return
        case .success(let head):
            guard head.status == 200 else {
                fail(UpstreamError.from(status: head.status, headers: head.headers))
                return
            }
        }
        drain()
        if diskFailed.load(ordering: .acquiring) { return }   // already failed, readers cut off
        let (written, length) = state.withLock { ($0.written, $0.length) }
        Log.debug("ingest complete", ["digest": digest.description, "bytes": "\(written)", "chunks": "\(chunks)"])
        guard written == length else {
            fail(.protocolError("upstream sent \(written) of \(length) bytes"))
            return
        }
        guard let actual = computed else {
            fail(.protocolError("upstream sent \(written) of \(length) bytes"))
            return
        }
        guard actual == digest else {
            counters.recordMismatch(source: upstreamName, expected: digest.description, actual: actual.description)
            Log.error("digest mismatch: blob discarded", ["upstream": upstreamName, "expected": digest.description, "actual": actual.description, "bytes": "\(written)"])
            fail(.digestMismatch(expected: digest.description, actual: actual.description))
            return
        }
        // Verified: release the withheld tail to every reader now. Making the
        // entry durable (fsync of the whole file, then rename) can take a
        // second for a large blob; clients need not wait for it, only the
        // cache entry does, and it appears only after both.
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.phase = .verified
            defer { s.dataWaiters = [] }
            return s.dataWaiters.map(\.wake)
        }
        for w in wake { w() }
        if cacheable {
            if !store.commit(tempPath: tempPath, fd: fd, digest: digest, size: written) {
                // Serving can still finish from the open temp file; it is just not cached.
                Log.error("cache commit failed", ["digest": digest.description, "error": String(cString: strerror(errno))])
                unlink(tempPath)
            }
        } else {
            unlink(tempPath)
            Log.warn("blob larger than the cache: served without caching", ["digest": digest.description, "bytes": "\(written)"])
        }
        let done = state.withLock { s -> [@Sendable (UpstreamError?) -> Void] in
            s.finished = true
            defer { s.doneWaiters = [] }
            return s.doneWaiters
        }
        for d in done { d(nil) }
    }

    func fail(_ e: UpstreamError) {
        diskFailed.store(true, ordering: .releasing)   // the disk stage stops writing
        let (heads, datas, dones) = state.withLock { s -> ([@Sendable (Result<Int64, UpstreamError>) -> Void], [@Sendable () -> Void], [@Sendable (UpstreamError?) -> Void]) in
            if case .failed = s.phase { return ([], [], []) }
            s.phase = .failed(e)
            s.finished = true
            defer {
                s.headWaiters = []
                s.dataWaiters = []
                s.doneWaiters = []
            }
            return (s.headWaiters, s.dataWaiters.map(\.wake), s.doneWaiters)
        }
        unlink(tempPath)
        for h in heads { h(.failure(e)) }
        for d in datas { d() }
        for d in dones { d(e) }
    }
}
