import CLinux
import Glibc

/// Thin wrappers over the socket calls the server needs. Everything above this
/// file talks in file descriptors and `SystemError`s, never in `sockaddr`.
enum Socket {
    /// Opens a non-blocking listening socket. `reusePort` lets one listener per
    /// event loop share the address so the kernel spreads accepts across loops.
    static func listen(host: String, port: UInt16, reusePort: Bool, backlog: Int32 = 4096) throws -> Int32 {
        let isV6 = host.contains(":")
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        // Wake the loop only when the request has arrived (nginx's `deferred`):
        // one wake-up and no empty read per new connection. HTTP and TLS
        // clients always speak first.
        var deferSeconds: Int32 = 10
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, &deferSeconds, socklen_t(MemoryLayout<Int32>.size))
        let rc: Int32
        if isV6 {
            // IPv6 only: 0.0.0.0 and [::] on one port can then both be listed.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else {
                close(fd)
                throw SystemError("inet_pton(\(host))", errno: EINVAL)
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
                close(fd)
                throw SystemError("inet_pton(\(host))", errno: EINVAL)
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw SystemError("bind(\(host):\(port))", errno: e)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw SystemError("listen", errno: e)
        }
        return fd
    }

    /// The port a socket is bound to (used when the configuration asks for port 0).
    static func boundPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { ptr -> UInt16 in
            if family == AF_INET6 {
                return ptr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return ptr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    /// Accepts one connection; nil when none is pending.
    static func accept(_ listener: Int32) -> (fd: Int32, peer: PeerAddress)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                anch_accept4(listener, $0, &len)
            }
        }
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return (fd, PeerAddress(storage))
    }
}

/// A client's address, kept as raw bytes so access control can match CIDRs
/// without re-parsing strings.
public struct PeerAddress: Sendable, CustomStringConvertible {
    public let bytes: [UInt8]   // 4 for IPv4, 16 for IPv6
    public let port: UInt16

    init(_ storage: sockaddr_storage) {
        var s = storage
        if Int32(storage.ss_family) == AF_INET6 {
            let sin6 = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            var a = sin6.sin6_addr
            bytes = withUnsafeBytes(of: &a) { Array($0) }
            port = UInt16(bigEndian: sin6.sin6_port)
        } else {
            let sin = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            var a = sin.sin_addr
            bytes = withUnsafeBytes(of: &a) { Array($0) }
            port = UInt16(bigEndian: sin.sin_port)
        }
    }

    public init(bytes: [UInt8], port: UInt16) {
        self.bytes = bytes
        self.port = port
    }

    public var host: String {
        var buf = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 16 ? AF_INET6 : AF_INET
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buf, 64) }
        return stringFromCBuffer(buf)
    }

    public var description: String { host }
}
