import Dispatch
import Glibc
import Synchronization

/// Writes one blob into the local store: the bytes go to a temp file while
/// they are hashed, and `commit` makes the file visible under a digest only
/// when the hash matches it. Nothing a writer holds is ever visible before.
///
/// Two stages, so receiving and hashing use both cores: the caller's thread
/// copies chunks into one of four 1 MiB spools and writes them to the temp
/// file (`writeStep` at a time, so a reader's first bytes do not wait for a
/// whole spool); a full spool goes to the writer's serial hash stage
/// (OpenSSL EVP), one hash call and one hand-off per MiB. The caller blocks
/// only when all spools are still being hashed.
///
/// A writer nobody follows (an upload: no client reads the temp file while
/// it grows) writes whole spools and has two: the steps only serve
/// followers, and each upload in progress then holds 2 MiB.
///
/// Not thread-safe: one thread appends, finishes and commits (the fetch
/// thread of a `SharedFetch`, or an upload's handler thread).
final class BlobWriter: @unchecked Sendable {
    /// The temp file; readable by others (with pread) up to `onDisk`.
    let file: OpenFile
    let tempPath: String
    private let store: FileBlobStore
    private let hasher: Hasher
    static let spoolCapacity = 1 << 20
    private let spoolCount: Int
    private let followed: Bool
    /// Bytes written to the file at a time (the last step of a spool may be less).
    private let writeStep: Int
    private var spools: [UnsafeMutableRawBufferPointer] = []
    private var current = 0          // the spool being filled
    private var spooled = 0          // bytes in it
    private var spoolOnDisk = 0      // bytes of it written to the file
    /// Bytes written to the temp file.
    private(set) var onDisk: Int64 = 0
    /// Bytes taken by `append`.
    private(set) var received: Int64 = 0
    /// How many more bytes the caller expects (for making room on a full disk).
    var expectedLength: Int64 = 0
    private var evictedForSpace = false
    /// Why the last write or the commit failed (a full disk, an I/O error).
    private(set) var failure: String?
    private let hashing = DispatchQueue(label: "anchorage.blob-writer")
    /// Spools neither being filled nor still in the hash stage.
    private let spareSpool: DispatchSemaphore
    /// Set by `cancel`: the hash stage skips what is left.
    private let stopped = Atomic<Bool>(false)
    private var finished = false
    /// The content's digest once `finish` drained the hash stage.
    private(set) var computed: Digest?

    /// `followed`: readers follow the temp file as it grows (a shared fetch).
    init?(store: FileBlobStore, algorithm: Digest.Algorithm, followed: Bool) {
        self.store = store
        self.followed = followed
        spoolCount = followed ? 4 : 2
        writeStep = followed ? 64 * 1024 : BlobWriter.spoolCapacity
        spareSpool = DispatchSemaphore(value: spoolCount - 1)
        tempPath = store.layout.newTempPath()
        let fd = open(tempPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            Log.error("cannot create temp file", ["path": tempPath, "error": String(cString: strerror(errno))])
            return nil
        }
        file = OpenFile(fd: fd)
        hasher = Hasher(algorithm)
    }

    deinit {
        for s in spools { s.deallocate() }
    }

    var isCancelled: Bool { stopped.load(ordering: .acquiring) }

    /// Takes `chunk`: spooled, written to the file in steps, hashed per
    /// spool. False when the write failed (`failure` says why) or the
    /// writer was cancelled.
    func append(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard !isCancelled else { return false }
        guard let base = chunk.baseAddress, chunk.count > 0 else { return true }
        if spools.isEmpty {
            // Allocated on first use, not while a request waits for its head.
            spools = (0..<spoolCount).map { _ in
                UnsafeMutableRawBufferPointer.allocate(byteCount: BlobWriter.spoolCapacity, alignment: 4096)
            }
        }
        received += Int64(chunk.count)
        var offset = 0
        while offset < chunk.count {
            let n = min(chunk.count - offset, BlobWriter.spoolCapacity - spooled)
            spools[current].baseAddress.map { ($0 + spooled).copyMemory(from: base + offset, byteCount: n) }
            spooled += n
            offset += n
            if spooled == BlobWriter.spoolCapacity {
                guard flush() else { return false }
                handOff()
            }
        }
        if spooled - spoolOnDisk >= writeStep || (onDisk == 0 && writeStep < BlobWriter.spoolCapacity) {
            return flush()
        }
        return true
    }

    /// Writes what is spooled but not yet on disk.
    func flush() -> Bool {
        guard spooled > spoolOnDisk, let base = spools[current].baseAddress else { return true }
        guard write(base + spoolOnDisk, spooled - spoolOnDisk, at: onDisk) else { return false }
        onDisk += Int64(spooled - spoolOnDisk)
        spoolOnDisk = spooled
        return true
    }

    /// After the last byte: writes the rest, drains the hash stage and
    /// returns the content's digest (nil if cancelled or a write failed).
    /// Idempotent.
    @discardableResult
    func finish() -> Digest? {
        guard !finished else { return computed }
        finished = true
        guard !isCancelled, flush() else {
            hashing.sync {}
            return nil
        }
        handOff()
        hashing.sync {}
        if !isCancelled { computed = hasher.finish() }
        return computed
    }

    /// Makes the file visible under `digest` if the content hashed to it:
    /// fsync, then rename into the store. False (and the temp file gone)
    /// otherwise.
    func commit(as digest: Digest) -> Bool {
        guard finish() == digest else {
            failure = failure ?? "content does not match \(digest)"
            unlink(tempPath)
            return false
        }
        guard store.commit(tempPath: tempPath, file: file, digest: digest, size: onDisk) else {
            // Read before unlink can change it: a full disk says ENOSPC.
            failure = String(cString: strerror(errno))
            unlink(tempPath)
            return false
        }
        return true
    }

    /// Stops hashing and removes the temp file; readers that have it open
    /// keep reading what was written.
    func cancel() {
        stopped.store(true, ordering: .releasing)
        unlink(tempPath)
    }

    /// Gives the filled spool to the hash stage and switches to the next,
    /// waiting for the stage to be done with one (backpressure).
    private func handOff() {
        guard spooled > 0 else { return }
        // An upload's client waits for the commit's fsync: the spool's
        // pages go out now, so that fsync has only the last one left. (A
        // shared fetch releases its tail before committing; no client
        // waits for its fsync.)
        if !followed { file.startWriteback(at: onDisk - Int64(spooled), length: Int64(spooled)) }
        spareSpool.wait()
        let index = current, count = spooled
        hashing.async { [self] in
            if !isCancelled { hasher.update(UnsafeRawBufferPointer(rebasing: spools[index][0..<count])) }
            spareSpool.signal()
        }
        current = (current + 1) % spoolCount
        spooled = 0
        spoolOnDisk = 0
    }

    /// Writes bytes at `at` in the temp file.
    private func write(_ base: UnsafeRawPointer, _ count: Int, at: Int64) -> Bool {
        var done = 0
        while done < count {
            let n = pwrite(file.fd, base + done, count - done, off_t(at) + off_t(done))
            if n < 0 {
                let error = errno   // before eviction's own calls change it
                if error == EINTR { continue }
                // Disk full: make room once by evicting least recently used
                // (unpinned) entries, then go on; otherwise fail cleanly below.
                // A blob the disk could not hold even with the cache emptied
                // evicts nothing.
                if error == ENOSPC || error == EDQUOT, !evictedForSpace {
                    evictedForSpace = true
                    let remaining = max(Int64(count - done), expectedLength - at - Int64(done))
                    if store.couldHold(remaining) {
                        let freed = store.makeRoom(remaining)
                        Log.warn("cache disk full: evicted to make room", ["needed": "\(remaining)", "freed": "\(freed)"])
                        if freed > 0 { continue }
                    } else {
                        Log.warn("disk full: this blob cannot fit even with the cache evicted; nothing evicted", ["needed": "\(remaining)"])
                    }
                }
                failure = String(cString: strerror(error))
                return false
            }
            done += n
        }
        return true
    }
}
