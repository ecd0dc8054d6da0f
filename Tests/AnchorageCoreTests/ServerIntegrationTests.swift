import Foundation
import Glibc
import XCTest

/// The built `anchorage serve` against raw sockets and curl.
final class ServerIntegrationTests: XCTestCase {
    func testHealthzAndAccessLog() throws {
        let s = try AnchorageServer(self)
        let r = try curl(["-i", "\(s.base)/healthz"])
        XCTAssertTrue(r.stdout.hasPrefix("HTTP/1.1 200 OK"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("\r\n\r\nok\n"), r.stdout)
        usleep(100_000)
        let line = try XCTUnwrap(s.accessLines("/healthz").first)
        for field in ["time=", "client=127.0.0.1", "method=GET", "path=/healthz", "status=200", "bytes=", "duration_ms=", "cache="] {
            XCTAssertTrue(line.contains(field), "access log lacks \(field): \(line)")
        }
        XCTAssertEqual(s.stop(), 0)
    }

    func testMalformedAndOversizedRequests() throws {
        let s = try AnchorageServer(self)
        func exchange(_ raw: String) throws -> (String, Bool) {
            let c = try RawClient(port: s.port, receiveTimeout: 5)
            c.send(raw)
            return c.readAllText()
        }
        let cases: [(String, String)] = [
            ("GARBAGE\r\n\r\n", "400"),
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "400"),
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", "400"),
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", "400"),
            ("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"),
            ("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<40).map { "X-\($0): " + String(repeating: "b", count: 2000) + "\r\n" }.joined() + "\r\n", "431"),
            ("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<120).map { "X-\($0): v\r\n" }.joined() + "\r\n", "431"),
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "413"),
            ("GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", "505"),
        ]
        for (raw, status) in cases {
            let (text, closed) = try exchange(raw)
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 \(status) "), "\(raw.prefix(60).debugDescription) → \(text.prefix(80).debugDescription)")
            XCTAssertTrue(closed, "connection closed after \(status)")
        }
        // Unsupported method and unknown path: answered, connection kept.
        let c = try RawClient(port: s.port)
        c.send("BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse()?.status, 405)
        c.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse()?.status, 404)
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse()?.status, 200)
        // Still serving.
        XCTAssertEqual(try curl(["\(s.base)/healthz"]).stdout, "ok\n")
    }

    func testPipelining() throws {
        let s = try AnchorageServer(self)
        let c = try RawClient(port: s.port)
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let (text, closed) = c.readAllText()
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
        XCTAssertEqual(statuses, ["200", "404", "200"])
        XCTAssertTrue(closed)
    }

    func testSlowlorisAndIdleTimeouts() throws {
        let s = try AnchorageServer(self, serverKeys: "header_timeout = 1s\nidle_timeout = 2s\n")
        // A head trickling in: 408 and closed after header_timeout.
        let slow = try RawClient(port: s.port, receiveTimeout: 6)
        let t0 = Date()
        slow.send("GET /healthz HTTP/1.1\r\nHo")
        usleep(400_000)
        slow.send("st: x\r\n")
        let (text, closed) = slow.readAllText()
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 408"), text)
        XCTAssertTrue(closed)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 4)

        // An idle keep-alive connection is closed after idle_timeout, without a response.
        let idle = try RawClient(port: s.port, receiveTimeout: 8)
        idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(idle.readResponse()?.status, 200)
        let t1 = Date()
        let (rest, idleClosed) = idle.readAll()
        XCTAssertTrue(rest.isEmpty)
        XCTAssertTrue(idleClosed)
        let waited = Date().timeIntervalSince(t1)
        XCTAssertGreaterThan(waited, 1.5)
        XCTAssertLessThan(waited, 5)
    }

    func testThousandsOfIdleConnections() throws {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        lim.rlim_cur = lim.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let s = try AnchorageServer(self)
        var clients: [RawClient] = []
        for i in 0..<2500 {
            let c = try RawClient(port: s.port)
            if i % 2 == 0 {
                // Half of them keep-alive after a request, half never spoke.
                c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            }
            clients.append(c)
        }
        for c in clients.enumerated() where c.offset % 2 == 0 {
            XCTAssertEqual(c.element.readResponse()?.status, 200)
        }
        let t0 = Date()
        let r = try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(s.base)/healthz"])
        XCTAssertEqual(r.stdout, "200")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0, "a new request is answered promptly")
        let rss = try String(contentsOfFile: "/proc/\(s.proc.process.processIdentifier)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        print("RSS with \(clients.count) idle connections: \(rss ?? "?")")
        clients.removeAll()
    }

    /// Regression: a SIGTERM right after start-up used to be swallowed (the
    /// handler was installed after the listeners), and the daemon never exited.
    func testSIGTERMRightAfterStartIsNotLost() throws {
        for _ in 0..<5 {
            let s = try AnchorageServer(self)
            XCTAssertEqual(try curl(["\(s.base)/healthz"]).stdout, "ok\n")
            let t0 = Date()
            XCTAssertEqual(s.stop(), 0)
            XCTAssertLessThan(Date().timeIntervalSince(t0), 5, "the daemon honoured SIGTERM promptly")
        }
    }

    /// SO_REUSEPORT lets sockets of one user share a port; a second daemon
    /// must not join the first silently and take half of its requests.
    func testSecondDaemonOnTheSamePortRefusesToStart() throws {
        let first = try AnchorageServer(self)
        let d = TempDir(self)
        let conf = d.write("mirror.conf", "[server]\nlisten = 127.0.0.1:\(first.port)\n[cache]\npath = \(d.path)/cache\n")
        let second = try runCommand([try anchorageBinary(), "serve", "--config", conf], timeout: 20)
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.stderr.contains("in use"), second.stderr)
        XCTAssertEqual(try curl(["\(first.base)/healthz"]).stdout, "ok\n")
    }

    func testGracefulShutdownExitsZero() throws {
        let s = try AnchorageServer(self)
        // An idle keep-alive connection must not hold the shutdown up.
        let c = try RawClient(port: s.port)
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse()?.status, 200)
        let t0 = Date()
        XCTAssertEqual(s.stop(), 0)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
        XCTAssertTrue(s.log.contains("msg=stopped"))
    }
}
