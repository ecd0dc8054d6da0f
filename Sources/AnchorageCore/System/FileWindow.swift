import Glibc

/// A stretch of address space, aligned to and as long as one `FileWindow`
/// block (2 MiB), reserved (PROT_NONE) for one event loop's windows. A
/// window is mapped into it over the reservation (`MAP_FIXED`) and the
/// reservation is put back over the window when the send returns, so the
/// address is never free for another mapping in between.
///
/// Why aligned: a block of a file whose page cache holds it in one 2 MiB
/// folio (the ingest writes blocks whole, `Ingest.blockSize`) is then
/// mapped by one page-table entry in one fault, and unmapped by clearing
/// that one entry, instead of 512 entries in 32 faults (fault-around maps
/// 64 KiB) and their removal. A C loop over a cached 10 MB file, map, copy
/// out and unmap: 1 MiB windows 57-59 ms per GB (8,266 faults), aligned
/// 2 MiB windows of 2 MiB folios 30-32 ms (772 faults).
final class WindowSlot: @unchecked Sendable {
    static let size = 2 << 20
    /// Nil if no address space could be reserved, or the reservation could
    /// not be put back after a window (windows are then not used: mapping
    /// over an address that is no longer ours could clobber another mapping).
    private(set) var base: UnsafeMutableRawPointer?

    init() {
        // Reserve twice the size and keep the aligned middle.
        let span = 2 * WindowSlot.size
        guard let raw = mmap(nil, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), raw != MAP_FAILED else {
            base = nil
            return
        }
        let start = (UInt(bitPattern: raw) + UInt(WindowSlot.size - 1)) & ~UInt(WindowSlot.size - 1)
        let lead = Int(start - UInt(bitPattern: raw))
        if lead > 0 { munmap(raw, lead) }
        let trail = span - lead - WindowSlot.size
        if trail > 0 { munmap(raw + lead + WindowSlot.size, trail) }
        base = raw + lead
    }

    deinit { if let base { munmap(base, WindowSlot.size) } }   // a lost slot's range is not ours to unmap

    /// Puts the reservation back over `length` bytes from the slot's start.
    fileprivate func reserve(_ length: Int) {
        guard let b = base else { return }
        let p = mmap(b, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
        if p != b {
            munmap(b, length)   // at least the window does not stay mapped
            Log.error("file window slot lost; sending through the copy buffer", ["error": String(cString: strerror(errno))])
            base = nil
        }
    }
}

/// A read-only mapping of one block of a file, for sending part of it
/// without first copying it into a buffer: `send` copies straight from the
/// page cache into the socket, one copy instead of two (`pread` + `send`).
/// The window lives in its loop's `WindowSlot` only while the send runs, so
/// at most one window per event loop is mapped at a time and the process's
/// resident size does not grow with the files it serves.
///
/// No `MAP_POPULATE`: the copy inside `send` faults the pages in, and each
/// fault maps the 64 KiB around it from the page cache (fault-around), or a
/// whole 2 MiB folio at once, which costs less than populating page by
/// page. A cached blob's file, 1 MiB windows mapped and unmapped in a loop:
/// 83 ms per GB populated, 60 by faults; bench/run row 5, five alternating
/// rounds: server CPU 5.02-5.55 -> 4.65-4.77 s per 20 GB, 3411-3731 ->
/// 3595-3758 MB/s.
///
/// A window is only mapped inside the file's current size (a file cut
/// short is left to the read path, which ends exactly at its end). Only the
/// kernel touches the mapped bytes (inside `send`), so a truncation racing a
/// send makes the copy fail with EFAULT instead of the process taking
/// SIGBUS, and the connection is closed like on a short read.
struct FileWindow: ~Copyable {
    /// The requested bytes, inside the mapping; fewer than asked for when
    /// they cross the end of the block.
    let bytes: UnsafeRawBufferPointer
    private let slot: WindowSlot
    private let mappedLength: Int

    private static let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))

    /// Maps the block of `fd` that holds `offset` into `slot`; `bytes` are up
    /// to `count` of them from `offset`, up to the block's end. Nil if the
    /// file is shorter or mmap fails (the caller falls back to reading).
    init?(fd: Int32, offset: Int64, count: Int, slot: WindowSlot) {
        var st = stat()
        guard count > 0, offset >= 0, let base = slot.base, fstat(fd, &st) == 0 else { return nil }
        let size = Int64(st.st_size)
        guard size >= offset + Int64(count) else { return nil }
        let block = Int64(WindowSlot.size)
        let start = offset & ~(block - 1)
        let end = min(start + block, size)
        let mapped = Int((end - start + FileWindow.pageSize - 1) & ~(FileWindow.pageSize - 1))
        guard let p = mmap(base, mapped, PROT_READ, MAP_SHARED | MAP_FIXED, fd, off_t(start)), p != MAP_FAILED else {
            // A failed MAP_FIXED may have unmapped the range: reserve it again.
            slot.reserve(WindowSlot.size)
            return nil
        }
        self.slot = slot
        mappedLength = mapped
        let lead = Int(offset - start)
        bytes = UnsafeRawBufferPointer(start: p + lead, count: min(count, Int(end - offset)))
    }

    deinit { slot.reserve(mappedLength) }
}
