import Foundation
import Glibc
import XCTest

/// Hostile requests against the running daemon: each gets its documented
/// status, nothing outside the cache directory is touched, memory stays bounded.
final class HostileInputTests: XCTestCase {
    func testHostileRequestCorpus() throws {
        let up = try UpstreamRegistry(self)
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n[charts \"c\"]\nurl = \(up.url)\n")
        let before = try FileManager.default.contentsOfDirectory(atPath: m.dir.path).sorted()
        let corpus: [(String, String)] = [
            ("GET /v2/a\u{0}b/manifests/x HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Evil: a\rInjected: b\r\n\r\n", "400"),
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Evil: a\u{0}b\r\n\r\n", "400"),
            ("GET http://evil.example/v2/ HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /v2/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /v2/a/manifests/%2e%2e%2f%2e%2e%2fetc HTTP/1.1\r\nHost: x\r\n\r\n", "404"),   // no valid tag: no such manifest
            ("GET /v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /v2/a/blobs/sha512:" + String(repeating: "0", count: 64) + " HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /v2/a/blobs/sha256:" + String(repeating: "0", count: 65) + " HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /charts/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /charts/c/..%2F..%2Fetc%2Fpasswd.tgz HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /charts/c/../index.yaml HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /charts/c/sub/dir/x.tgz HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /api/image?kind=cached&source=../..&name=etc&ref=passwd HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            ("GET /api/image?kind=cached&source=up.test&name=a&ref=../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /api/repository?kind=../..&source=x&name=etc HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("GET /api/chart?repository=r&chart=..&version=..%2f..%2fetc HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            ("DELETE /api/image?kind=cached&source=x&name=a&ref=v1 HTTP/1.1\r\nHost: x\r\n\r\n", "401"),
            ("POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd", "405"),
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "400"),
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n", "501"),
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", "400"),
            ("\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}", "400"),
        ]
        for (raw, status) in corpus {
            let c = try RawClient(port: m.port, receiveTimeout: 5)
            c.send(raw)
            let response = c.readResponse()
            XCTAssertEqual(response.map { String($0.status) }, status, "\(raw.prefix(70).debugDescription) → \(response?.head.prefix(60).debugDescription ?? "no response")")
        }
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n")
        // Nothing was created outside the cache directory.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: m.dir.path).sorted(), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(m.dir.path)/cache/etc"))
    }

    func testTenThousandAbandonedConnections() throws {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let m = try AnchorageServer(self, serverKeys: "access_log = false\n")
        let pid = m.proc.process.processIdentifier
        func rssKiB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return Int(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        for round in 0..<2 {
            var clients: [RawClient] = []
            for i in 0..<5000 {
                let c = try RawClient(port: m.port)
                switch i % 3 {
                case 0: c.send("GET /v2/ HTTP/1.1\r\nHo")                 // half a head
                case 1: c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") // a request, response never read
                default: break                                           // nothing at all
                }
                clients.append(c)
            }
            // Abandon them with a reset.
            for c in clients {
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            }
            clients.removeAll()
            print("round \(round): RSS \(rssKiB()) KiB after 5,000 abandoned connections")
        }
        let t0 = Date()
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1)
        // All of them are gone from the server's books.
        let deadline = Date().addingTimeInterval(10)
        var open = Int.max
        while Date() < deadline {
            let metrics = try curl(["\(m.base)/metrics"]).stdout
            open = Int(metrics.split(separator: "\n").first { $0.hasPrefix("anchorage_open_connections ") }?.split(separator: " ").last ?? "") ?? Int.max
            if open <= 1 { break }
            usleep(200_000)
        }
        XCTAssertLessThanOrEqual(open, 1)
        XCTAssertLessThan(rssKiB(), 96 * 1024, "memory stays bounded")
    }
}
