import Glibc

/// A read-only mapping of part of a file, for sending it without first
/// copying it into a buffer: `send` copies straight from the page cache into
/// the socket, one copy instead of two (`pread` + `send`). The window is
/// unmapped as soon as the send returns, so at most one window per event
/// loop is mapped at a time and the process's resident size does not grow
/// with the files it serves.
///
/// No `MAP_POPULATE`: the copy inside `send` faults the pages in, and each
/// fault maps the 64 KiB around it from the page cache (fault-around), which
/// costs less than populating page by page. A cached blob's file, 1 MiB
/// windows mapped and unmapped in a loop: 83 ms per GB populated, 60 by
/// faults; bench/run row 5, five alternating rounds: server CPU 5.02-5.55 ->
/// 4.65-4.77 s per 20 GB, 3411-3731 -> 3595-3758 MB/s.
///
/// A window is only mapped inside the file's current size (a file cut
/// short is left to the read path, which ends exactly at its end). Only the
/// kernel touches the mapped bytes (inside `send`), so a truncation racing a
/// send makes the copy fail with EFAULT instead of the process taking
/// SIGBUS, and the connection is closed like on a short read.
struct FileWindow: ~Copyable {
    /// The requested bytes, inside the page-aligned mapping.
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer
    private let mappedLength: Int

    private static let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))

    /// Maps `count` bytes of `fd` from `offset`; nil if the file is shorter
    /// or mmap fails (the caller falls back to reading).
    init?(fd: Int32, offset: Int64, count: Int) {
        var st = stat()
        guard count > 0, offset >= 0, fstat(fd, &st) == 0, Int64(st.st_size) >= offset + Int64(count) else { return nil }
        let start = offset & ~(FileWindow.pageSize - 1)
        let lead = Int(offset - start)
        let length = lead + count
        guard let p = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(start)), p != MAP_FAILED else {
            return nil
        }
        mapping = p
        mappedLength = length
        bytes = UnsafeRawBufferPointer(start: p + lead, count: count)
    }

    deinit { munmap(mapping, mappedLength) }
}
