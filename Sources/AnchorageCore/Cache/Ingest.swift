import Foundation
import Glibc
import Synchronization

/// One blob being fetched from an upstream into the cache, shared by every
/// client that asks for it meanwhile (single flight).
///
/// Two stages, so receiving and hashing use both cores: the fetch thread
/// copies libcurl's chunks into one of four 1 MiB spools, writes them to a
/// temp file (64 KiB steps, then whole 2 MiB blocks: `writeStep`) and
/// publishes the new length (waking waiting
/// connections, which send from the same temp file); a full spool goes to
/// this ingest's serial hash stage. The last `tailHold` bytes are withheld
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
    private let hasher: Hasher             // hash stage; the fetch thread once it is drained
    private var upstreamStatus = 0          // fetch thread only
    private var upstreamHeaders = HTTPHeaders()
    private var reserved: Int64 = 0         // fetch thread only
    private var cacheable = true            // fetch thread only
    // libcurl's chunks are gathered in a spool and handed to the hash stage
    // in one go, so one hash call and one wake-up serve 1 MiB. Four spools
    // rather than two: the stages stall less on each other (cold 1 GiB
    // 1018-1047 -> 1042-1098 MB/s, measured when the second stage also
    // wrote the file; eight gave little more).
    static let spoolCount = 4
    /// Allocated once the head is out (fetch thread, in `begin`), not while
    /// a cold request waits for its upstream request to go out.
    private var spools: [UnsafeMutableRawBufferPointer] = []
    private var current = 0                 // fetch thread: the spool being filled
    private var spooled = 0                 // fetch thread: bytes in it
    private var expected: Int64 = 0         // fetch thread: the Content-Length (from `begin`)
    private var received: Int64 = 0         // fetch thread: bytes taken from libcurl
    private var onDisk: Int64 = 0           // fetch thread: bytes written to the temp file
    private var spoolOnDisk = 0             // fetch thread: bytes of the current spool written
    private var announced: Int64 = 0        // fetch thread: bytes published to readers
    /// The fetch thread writes the file itself, right after libcurl read the
    /// bytes from the socket: the first block 64 KiB at a time, so a cold
    /// client's first bytes do not wait for more, and from then on whole
    /// 2 MiB blocks at aligned offsets (`blockSize`, two spools in one
    /// `pwritev`). The kernel sizes the page-cache folios it allocates by
    /// the write, so each block lands in one 2 MiB folio, which a
    /// `FileWindow` maps with one page-table entry when the blob is served
    /// warm: the 10 MB layers of bench/run row 5, alternating rounds,
    /// 5123-5297 against 4547-4629 MB/s (server 3.31-3.52 against 3.99-4.05
    /// CPU-s per 20 GB); a warm 1 GiB, 4066-5765 against 3397-4372 MB/s.
    ///
    /// The price, on a VM whose balloon reports free memory to the host
    /// (virtio-balloon free page reporting, as on the 2-core test VM): free
    /// 2 MiB blocks are given back to the host, and whoever fills one next
    /// takes the host's page faults inside the copy (perf: the time in
    /// `copy_folio_from_iter_atomic`); small folios mostly come from memory
    /// that was never given back. Cold 1 GiB pulls from fresh instances
    /// alternating with 64 KiB steps: 498-755 against 734-1001 MB/s; one
    /// after another, so that freed blocks were reused before they were
    /// reported: 1155-1180 (the first 386) against 828-1069. Earlier
    /// sessions' step sizes (CPU-s per cold GiB, 64 KiB steps not aligned):
    /// libcurl's 16 KiB chunks 1.54-1.57, 32 KiB 1.44-1.46, 64 KiB
    /// 1.23-1.47, 128 KiB 1.24-1.44, 256 KiB 2.75-3.32, 1 MiB 1.77-2.15.
    /// On a later VM (512 KiB of L2) whole blocks cost a cold GiB 4.19-4.85
    /// CPU-s against 2.47-2.75 and gained nothing warm, so `large_folios =
    /// auto` (`LargeFolioPolicy`) writes whole blocks only where free memory
    /// is not reported to a host; `perf` there: the block writes' copy into
    /// the page cache took 2.3 s per GiB, the 64 KiB writes' 0.17 s.
    static let writeStep = 64 * 1024
    /// See `writeStep`.
    static let blockSize = 2 * spoolCapacity
    private var held: Int?                  // fetch thread: a full spool, the first half of a block not yet written
    private var chunks = 0
    private var drained = false             // fetch thread: hash stage finished
    private var evictedForSpace = false     // fetch thread
    /// The hash stage: hashes spools in order.
    private let hashing = DispatchQueue(label: "anchorage.ingest")
    /// Spools neither being filled nor still in the hash stage.
    private let spareSpool = DispatchSemaphore(value: Ingest.spoolCount - 1)
    /// Set when the ingest failed: the hash stage skips what is left.
    private let stopped = Atomic<Bool>(false)
    /// The content's digest, settled once the hash stage has drained (fetch thread).
    private var computed: Digest?
    static let spoolCapacity = 1 << 20
    /// Readers are woken when at least this much more is on disk (and for
    /// the first chunk and the last), not for every chunk: one connection
    /// wake-up per chunk doubled the sending loop's CPU on a cold 1 GiB
    /// pull (0.50 -> 0.21-0.28 CPU-s).
    static let publishStep: Int64 = 256 * 1024
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
    /// libcurl asks right after the transfer, so this drains the hash stage.
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
        expected = cl
        cacheable = store.index.reserve(cl)
        if cacheable { reserved = cl }
        let waiters = state.withLock { s -> [@Sendable (Result<Int64, UpstreamError>) -> Void] in
            s.length = cl
            s.phase = .streaming
            defer { s.headWaiters = [] }
            return s.headWaiters
        }
        for w in waiters { w(.success(cl)) }
        spools = (0..<Ingest.spoolCount).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: Ingest.spoolCapacity, alignment: 4096)
        }
        return true
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard received + Int64(chunk.count) <= expected else {
            fail(.protocolError("upstream sent more bytes than its Content-Length"))
            return false
        }
        guard !stopped.load(ordering: .acquiring) else { return false }
        guard let base = chunk.baseAddress, chunk.count > 0 else { return true }
        chunks += 1
        received += Int64(chunk.count)
        var offset = 0
        while offset < chunk.count {
            let n = min(chunk.count - offset, Ingest.spoolCapacity - spooled)
            (spools[current].baseAddress! + spooled).copyMemory(from: base + offset, byteCount: n)
            spooled += n
            offset += n
            if spooled == Ingest.spoolCapacity {
                guard flushSpool() else { return false }
                handOff()
            }
        }
        if spooled - spoolOnDisk >= Ingest.writeStep || onDisk == 0 || received == expected {
            guard flushSpool() else { return false }
        }
        return true
    }

    /// Gives the filled spool to the hash stage and switches to the next,
    /// waiting for the stage to be done with it (backpressure on the fetch).
    private func handOff() {
        guard spooled > 0 else { return }
        spareSpool.wait()
        let index = current, count = spooled
        hashing.async { [self] in
            if !stopped.load(ordering: .acquiring) {
                hasher.update(UnsafeRawBufferPointer(rebasing: spools[index][0..<count]))
            }
            spareSpool.signal()
        }
        current = (current + 1) % Ingest.spoolCount
        spooled = 0
        spoolOnDisk = 0
    }

    /// After the last chunk (fetch thread): publishes what is on disk, hands
    /// off the rest, waits for the hash stage and settles the digest if every
    /// byte arrived.
    private func drain() {
        guard !drained else { return }
        drained = true
        if !stopped.load(ordering: .acquiring), flushSpool(), announced < onDisk {
            announced = onDisk
            publish(written: onDisk)
        }
        handOff()
        hashing.sync {}
        if !stopped.load(ordering: .acquiring), received == expected {
            computed = hasher.finish()
        }
    }

    /// Writes the current spool's new bytes to the temp file and publishes
    /// them (fetch thread). The first block goes out in `writeStep`s; from
    /// then on only whole blocks (two spools) and the last bytes.
    private func flushSpool() -> Bool {
        guard spooled > spoolOnDisk else { return true }
        let fresh = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(spools[current])[spoolOnDisk..<spooled])
        if store.largeFolios, onDisk >= Int64(Ingest.blockSize) {
            let last = received == expected
            if !last && spooled < Ingest.spoolCapacity { return true }
            if !last && held == nil {
                held = current   // the block's first half: written with the second
                return true
            }
            let parts = held.map { [UnsafeRawBufferPointer(spools[$0]), fresh] } ?? [fresh]
            held = nil
            guard writeToFile(parts) else { return false }
            onDisk += Int64(parts.reduce(0) { $0 + $1.count })
        } else {
            guard writeToFile([fresh]) else { return false }
            onDisk += Int64(fresh.count)
        }
        spoolOnDisk = spooled
        if onDisk - announced >= Ingest.publishStep || announced == 0 || onDisk == expected {
            announced = onDisk
            publish(written: onDisk)
        }
        return true
    }

    /// Writes `parts` at the end of the temp file in one call (fetch
    /// thread): the kernel sizes page-cache folios by the write, and a
    /// block must arrive whole to land in one.
    private func writeToFile(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        var iov = parts.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        let total = parts.reduce(0) { $0 + $1.count }
        let n = iov.withUnsafeMutableBufferPointer { pwritev(fd, $0.baseAddress, Int32($0.count), off_t(onDisk)) }
        if n == total { return true }
        // Short, interrupted or failed (a full disk): the rest piece by piece.
        var skip = max(0, n), at = onDisk + Int64(max(0, n))
        for part in parts {
            if skip >= part.count { skip -= part.count; continue }
            guard let base = part.baseAddress, writeToFile(base + skip, part.count - skip, at: at) else { return false }
            at += Int64(part.count - skip)
            skip = 0
        }
        return true
    }

    /// Writes bytes at `at` in the temp file (fetch thread).
    private func writeToFile(_ base: UnsafeRawPointer, _ count: Int, at: Int64) -> Bool {
        var done = 0
        while done < count {
            let n = pwrite(fd, base + done, count - done, off_t(at) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                // Disk full: make room once by evicting least recently used
                // (unpinned) entries, then go on; otherwise fail cleanly below.
                if errno == ENOSPC || errno == EDQUOT, !evictedForSpace {
                    evictedForSpace = true
                    let remaining = expected - at - Int64(done)
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
        if stopped.load(ordering: .acquiring) { return }   // already failed, readers cut off
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
        stopped.store(true, ordering: .releasing)   // the fetch stops writing, the hash stage hashing
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
