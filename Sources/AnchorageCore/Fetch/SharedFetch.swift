import Foundation
import Glibc
import Synchronization

/// One blob being fetched from an upstream into the store, shared by every
/// client that asks for it meanwhile (single flight, `InFlightTable`).
///
/// The fetch thread hands libcurl's chunks to a `BlobWriter` (temp file and
/// hash) and publishes how much is on disk, waking the connections that
/// follow, which send from the same temp file. The last `tailHold` bytes
/// are withheld from every reader until the digest and length have been
/// checked: on a match the tail is released and the writer commits the
/// file into the store; on a mismatch the temp file is deleted and every
/// reader is cut off, so no client ever holds a complete body with the
/// wrong digest.
///
///     starting ──head 200──▶ streaming ──digest ok──▶ verified
///        └──────────── error / mismatch ─────────────▶ failed
final class SharedFetch: BodyStream, TransferSink, @unchecked Sendable {
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

        /// What readers may have now: nothing of a failed fetch, all of a
        /// verified one, else what is on disk short of the held-back tail.
        var releasable: Int64? {
            switch phase {
            case .failed: nil
            case .verified: written
            case .starting: 0
            case .streaming: max(0, min(written, length - min(length, SharedFetch.tailHold)))
            }
        }
    }

    static let tailHold: Int64 = 64 * 1024
    /// Readers are woken when at least this much more is on disk (and for
    /// the first chunk and the last), not for every chunk: one connection
    /// wake-up per chunk would cost the sending loop more than the send.
    static let publishStep: Int64 = 256 * 1024
    /// Room in the cache is reserved as bytes arrive, this much ahead, not
    /// for the whole announced length at once: an upstream that promises
    /// 150 MB and sends 2 evicts nothing it did not need.
    static let reserveStep: Int64 = 1 << 20

    let digest: Digest
    let upstreamName: String
    private let store: FileBlobStore
    private let writer: BlobWriter
    private var reserved: Int64 = 0         // fetch thread only
    private var cacheable = true            // fetch thread only
    /// Fetch thread: the Content-Length (from `begin`); nil for a chunked or
    /// close-delimited body, whose length is known only at its end.
    private var expected: Int64?
    private var announced: Int64 = 0        // fetch thread: bytes published to readers
    private let state = Mutex(State())
    let counters: Counters

    init?(digest: Digest, store: FileBlobStore, upstreamName: String, counters: Counters) {
        guard let writer = store.makeWriter(digest.algorithm, followed: true) else { return nil }
        self.digest = digest
        self.store = store
        self.writer = writer
        self.upstreamName = upstreamName
        self.counters = counters
    }

    // MARK: BodyStream (any thread)

    var length: Int64 { state.withLock { $0.length } }

    var localFile: OpenFile? { writer.file }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        writer.file.read(at: offset, into: buffer)
    }

    func available() -> Int64? { state.withLock { $0.releasable } }

    func notifyWhenAvailable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            switch s.phase {
            case .failed, .verified: return false
            case .starting, .streaming:
                if let r = s.releasable, r > offset { return false }
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

    /// Calls back once the fetch is verified (nil) or failed (the error).
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
        return writer.computed == nil || writer.computed == digest
    }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        guard status == 200 else { return false }
        guard let cl = headers["Content-Length"].flatMap({ Int64($0) }), cl >= 0 else {
            // Chunked or close-delimited (some proxies and CDNs answer so):
            // the digest makes the length unnecessary for safety. Clients
            // get their answer once the whole body is here and verified.
            expected = nil
            return true
        }
        expected = cl
        writer.expectedLength = cl
        // A blob larger than the whole cache is streamed without caching,
        // and evicts nothing.
        cacheable = store.index.fits(cl)
        announceHead(cl)
        return true
    }

    /// The length is known: answer every client waiting for the head.
    private func announceHead(_ length: Int64) {
        let waiters = state.withLock { s -> [@Sendable (Result<Int64, UpstreamError>) -> Void] in
            s.length = length
            s.phase = .streaming
            defer { s.headWaiters = [] }
            return s.headWaiters
        }
        for w in waiters { w(.success(length)) }
    }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        let after = writer.received + Int64(chunk.count)
        if let expected, after > expected {
            fail(.protocolError("upstream sent more bytes than its Content-Length"))
            return false
        }
        if cacheable, after > reserved {
            let step = min((expected ?? Int64.max) - reserved, max(SharedFetch.reserveStep, after - reserved))
            if expected == nil, !store.index.fits(reserved + step) {
                // A length-less body that outgrew the cache: served, not cached.
                cacheable = false
            } else {
                store.index.reserve(step)
                reserved += step
            }
        }
        guard writer.append(chunk), after != expected || writer.flush() else {
            failWrite()
            return false
        }
        // Without a length nobody reads before the end: nothing to publish.
        guard let expected else { return true }
        let onDisk = writer.onDisk
        if onDisk - announced >= SharedFetch.publishStep || (announced == 0 && onDisk > 0) || onDisk == expected {
            announced = onDisk
            publish(written: onDisk)
        }
        return true
    }

    /// A write to the temp file failed (a full disk after eviction, an I/O
    /// error); a cancelled writer means the fetch already failed.
    private func failWrite() {
        guard !writer.isCancelled else { return }
        let why = writer.failure ?? "unknown error"
        Log.error("cache write failed; transfer abandoned, nothing cached", ["digest": digest.description, "error": why])
        fail(.protocolError("cache write failed: \(why)"))
    }

    /// After the last chunk (fetch thread): publishes what is on disk and
    /// settles the digest.
    private func drain() {
        guard !writer.isCancelled else { return }
        writer.finish()
        if writer.onDisk > announced {
            announced = writer.onDisk
            publish(written: announced)
        }
    }

    private func publish(written: Int64) {
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.written = written
            let r = s.releasable ?? 0
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
        if writer.isCancelled { return }   // already failed, readers cut off
        let written = writer.onDisk
        guard written == expected ?? written, let actual = writer.computed else {
            if writer.failure != nil { return failWrite() }
            fail(.protocolError("upstream sent \(written) of \(expected ?? written) bytes"))
            return
        }
        guard actual == digest else {
            counters.recordMismatch(source: upstreamName, expected: digest.description, actual: actual.description)
            Log.error("digest mismatch: blob discarded", ["upstream": upstreamName, "expected": digest.description, "actual": actual.description, "bytes": "\(written)"])
            fail(.digestMismatch(expected: digest.description, actual: actual.description))
            return
        }
        if expected == nil { announceHead(written) }
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
        if !cacheable {
            writer.cancel()
            Log.warn("blob larger than the cache: served without caching", ["digest": digest.description, "bytes": "\(written)"])
        } else if !writer.commit(as: digest) {
            // Serving can still finish from the open temp file; it is just not cached.
            Log.error("cache commit failed", ["digest": digest.description, "error": writer.failure ?? "unknown"])
        }
        let done = state.withLock { s -> [@Sendable (UpstreamError?) -> Void] in
            s.finished = true
            defer { s.doneWaiters = [] }
            return s.doneWaiters
        }
        for d in done { d(nil) }
    }

    func fail(_ e: UpstreamError) {
        writer.cancel()   // the fetch stops writing, the hash stage hashing; the temp file goes
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
        for h in heads { h(.failure(e)) }
        for d in datas { d() }
        for d in dones { d(e) }
    }
}
