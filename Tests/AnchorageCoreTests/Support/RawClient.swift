import Foundation
import Glibc

/// A blocking TCP client on raw sockets, for malformed input and timing tests
/// that curl cannot express.
final class RawClient {
    let fd: Int32
    /// Bytes read past the last response (pipelined answers).
    private var leftover: [UInt8] = []

    init(port: UInt16, host: String = "127.0.0.1", receiveTimeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "socket", code: Int(errno)) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw NSError(domain: "connect", code: Int(e))
        }
        setReceiveTimeout(receiveTimeout)
    }

    func setReceiveTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ s: String) -> Bool { send(Array(s.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// Reads until the peer closes or the receive timeout expires.
    func readAll() -> (bytes: [UInt8], closed: Bool) {
        var out = leftover
        leftover = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { out.append(contentsOf: buf[0..<n]); continue }
            return (out, n == 0 || (n < 0 && errno == ECONNRESET))
        }
    }

    func readAllText() -> (text: String, closed: Bool) {
        let (b, c) = readAll()
        return (String(decoding: b, as: UTF8.self), c)
    }

    /// Reads one response: head, then Content-Length bytes of body.
    func readResponse(toHEAD isHead: Bool = false) -> (status: Int, head: String, body: [UInt8])? {
        var data = leftover
        leftover = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var headEnd = findHeadEnd(data)
        while headEnd == nil {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return nil }
            data.append(contentsOf: buf[0..<n])
            if let r = findHeadEnd(data) { headEnd = r }
        }
        let he = headEnd!
        let head = String(decoding: data[0..<he], as: UTF8.self)
        let parts = head.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var length = 0
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
        }
        if status == 304 || isHead { length = 0 }
        while data.count - he < length {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        let end = min(data.count, he + length)
        leftover = Array(data[end...])
        return (status, head, Array(data[he..<end]))
    }

    private func findHeadEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}
