import CLinux
import Glibc

/// The outcome of one non-blocking I/O call on a socket or file.
public enum IOResult: Equatable, Sendable {
    /// Bytes moved (always more than zero).
    case done(Int)
    /// The socket cannot take or give more now (EAGAIN).
    case wouldBlock
    /// EINTR: try again at once.
    case interrupted
    /// The peer closed, the file ended early, or the call failed.
    case failed

    /// A return value of send/recv/pread/sendfile and errno read as one case.
    init(_ n: Int) {
        if n > 0 { self = .done(n) } else if n == 0 { self = .failed } else { self = errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : errno == EINTR ? .interrupted : .failed }
    }
}

/// An open file that closes itself when the last response using it is done.
/// Sharing one object between the body writer and the cache lets an evicted
/// (unlinked) file stay readable until its readers finish, as Linux allows.
public final class OpenFile: @unchecked Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    /// Opens read-only; nil when the file does not exist.
    public static func openForReading(_ path: String) -> OpenFile? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? OpenFile(fd: fd) : nil
    }

    public var size: Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// The whole file, if it is at most `limit` bytes and reads completely.
    /// Starts writing a written range out to the disk without waiting
    /// (`sync_file_range`), so a later `fsync` finds little left to do.
    func startWriteback(at offset: Int64, length: Int64) {
        _ = anch_start_writeback(fd, offset, length)
    }

    public func readAll(limit: Int) -> [UInt8]? {
        let size = Int(self.size)
        guard size <= limit else { return nil }
        var buf = [UInt8](repeating: 0, count: size)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
        return n == size ? buf : nil
    }

    /// Reads up to `buffer.count` bytes at `offset`; a file shorter than
    /// that ends in `.failed`, so a body is never padded.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        IOResult(pread(fd, buffer.baseAddress, buffer.count, off_t(offset)))
    }

    /// sendfile(2) of up to `count` bytes at `offset` to `socket`: page
    /// cache to socket without a copy through user space.
    func send(to socket: Int32, at offset: Int64, count: Int64) -> IOResult {
        var off = offset
        return IOResult(anch_sendfile(socket, fd, &off, Int(count)))
    }

    deinit { close(fd) }
}

/// Raises RLIMIT_NOFILE to its hard limit so the server can hold many idle
/// keep-alive connections; returns the new soft limit.
@discardableResult
public func raiseFileDescriptorLimit() -> UInt64 {
    var lim = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 else { return 0 }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
    }
    return UInt64(lim.rlim_cur)
}

/// Writes the whole buffer to a blocking fd (stderr, files), retrying on EINTR.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        off += n
    }
    return true
}
