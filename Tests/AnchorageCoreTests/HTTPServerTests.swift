import Foundation
import Glibc
import Synchronization
import XCTest
@testable import AnchorageCore

/// A stream body for tests: a writer appends to a temp file and publishes
/// the length; `fail()` cuts every reader off. With `local` false it hides
/// its file, as a remote store's stream would, and is read through `read`.
final class TestGrowingFile: BodyStream, @unchecked Sendable {
    let file: OpenFile
    let length: Int64
    let local: Bool
    private let state = Mutex<(published: Int64, failed: Bool, waiters: [(Int64, @Sendable () -> Void)])>((0, false, []))

    init(path: String, length: Int64, local: Bool = true) {
        file = OpenFile(fd: open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600))
        self.length = length
        self.local = local
    }

    var localFile: OpenFile? { local ? file : nil }

    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        file.read(at: offset, into: buffer)
    }

    func append(_ bytes: [UInt8]) {
        let off = state.withLock { $0.published }
        _ = bytes.withUnsafeBytes { pwrite(file.fd, $0.baseAddress, bytes.count, off_t(off)) }
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.published += Int64(bytes.count)
            let ready = s.waiters.filter { $0.0 < s.published }.map(\.1)
            s.waiters.removeAll { $0.0 < s.published }
            return ready
        }
        wake.forEach { $0() }
    }

    func fail() {
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.failed = true
            defer { s.waiters = [] }
            return s.waiters.map(\.1)
        }
        wake.forEach { $0() }
    }

    func available() -> Int64? {
        state.withLock { $0.failed ? nil : $0.published }
    }

    func notifyWhenAvailable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            if s.failed || s.published > offset { return false }
            s.waiters.append((offset, wake))
            return true
        }
    }
}

/// Takes a request body, hashes it, and answers its SHA-256 and length
/// (or 400 with the error) once it ended.
final class HashingReceiver: RequestBodyReceiver, @unchecked Sendable {
    let hasher = Hasher(.sha256)
    var count = 0
    let responder: HTTPResponder
    init(_ responder: HTTPResponder) { self.responder = responder }
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        hasher.update(bytes)
        count += bytes.count
        return true
    }
    func finish(_ error: RequestBodyError?) {
        if let error { return responder.respond(.text(.badRequest, "\(error)")) }
        responder.respond(.text(.ok, "\(hasher.finish().hex) \(count)"))
    }
}

final class GrowingTable: Sendable {
    private let table = Mutex<[String: TestGrowingFile]>([:])
    func get(_ k: String) -> TestGrowingFile? { table.withLock { $0[k] } }
    func put(_ k: String, _ g: TestGrowingFile) { table.withLock { $0[k] = g } }
}

/// The HTTP server in-process with real clients (curl, raw sockets).
final class HTTPServerTests: XCTestCase {
    private var server: HTTPServer?
    private var port: UInt16 = 0
    private var dir: TempDir!
    private var blob: [UInt8] = []
    private let growing = GrowingTable()

    override func setUpWithError() throws {
        dir = TempDir(self)
        blob = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        FileManager.default.createFile(atPath: dir.file("blob"), contents: Data(blob))
    }

    override func tearDown() {
        server?.shutdown(grace: 1)
        server = nil
    }

    private func start(_ tweak: (inout HTTPServerOptions) -> Void = { _ in }) throws {
        let blobPath = dir.file("blob")
        let growing = self.growing
        let blobBytes = Data(blob)
        let handler = ClosureHandler { req, responder in
            var h = HTTPHeaders()
            h.add("ETag", "\"blob-etag\"")
            switch req.path {
            case "/blob":
                guard let f = OpenFile.openForReading(blobPath) else { return responder.respond(.text(.notFound, "gone")) }
                responder.respond(HTTPResponse(status: .ok, headers: h, body: .file(f, offset: 0, length: f.size)))
            case "/shrunk":
                // A file cut short after its length was promised (a disk
                // error, or someone truncating the cache behind our back).
                let path = blobPath + ".shrunk"
                guard FileManager.default.createFile(atPath: path, contents: blobBytes) else { return responder.respond(.text(.internalServerError, "cannot write")) }
                guard let f = OpenFile.openForReading(path) else { return responder.respond(.text(.notFound, "gone")) }
                let promised = f.size
                _ = truncate(path, off_t(3 << 20) + 100)
                responder.respond(HTTPResponse(status: .ok, headers: h, body: .file(f, offset: 0, length: promised)))
            case "/small":
                responder.respond(HTTPResponse(status: .ok, headers: h, body: .text("hello world")))
            case "/digest":
                // Reads the body from a worker thread's call, as a handler would.
                DispatchQueue.global().async { responder.readBody(into: HashingReceiver(responder)) }
            case "/later":
                // Answer from another thread, as upstream-backed handlers do.
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { responder.respond(.text(.ok, "later")) }
            default:
                if req.path.hasPrefix("/growing/"), let g = growing.get(req.path) {
                    responder.respond(HTTPResponse(status: .ok, headers: h, body: .stream(g, offset: 0, length: g.length)))
                } else {
                    responder.respond(.text(.notFound, "no"))
                }
            }
        }
        var options = HTTPServerOptions(listen: [ListenAddress(host: "127.0.0.1", port: 0)], loops: 2)
        options.accessLog = false
        tweak(&options)
        let s = HTTPServer(options: options, handler: handler)
        try s.start()
        server = s
        port = s.boundAddresses[0].port
    }

    private var base: String { "http://127.0.0.1:\(port)" }

    func testCurlKeepAliveReuse() throws {
        try start()
        let r = try curl(["-v", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "\(base)/small", "\(base)/blob", "\(base)/later"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Re-using existing connection"), r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "Connected to").count - 1, 1, "one TCP connection for three requests")
    }

    func testNewConnectionsGoToTheLoopWithFewest() throws {
        try start()
        // Held-open connections, opened one after another. The kernel's
        // SO_REUSEPORT hash alone puts 24 of them 12/12 on two loops only
        // about one time in six.
        var clients: [RawClient] = []
        for _ in 0..<24 {
            let c = try RawClient(port: port)
            XCTAssertTrue(c.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"))
            XCTAssertEqual(c.readResponse()?.status, 200)
            clients.append(c)
        }
        XCTAssertEqual(server?.connectionsPerLoop, [12, 12])
        // Each one goes on being served by the loop it was placed on.
        for c in clients {
            XCTAssertTrue(c.send("GET /blob HTTP/1.1\r\nHost: x\r\n\r\n"))
            XCTAssertEqual(c.readResponse()?.body.count, blob.count)
        }
        clients.removeAll()
        let deadline = Date().addingTimeInterval(5)
        while server?.openConnections != 0 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(server?.connectionsPerLoop, [0, 0])
    }

    func testPlacementPicksTheLeastBusyLoop() {
        XCTAssertEqual(ConnectionPlacement.choose(accepting: 1, open: [3, 3]), 1, "the accepting loop on a tie")
        XCTAssertEqual(ConnectionPlacement.choose(accepting: 1, open: [2, 3]), 0)
        XCTAssertEqual(ConnectionPlacement.choose(accepting: 0, open: [5, 4, 1]), 2)
    }

    func testFileBodyIsByteExact() throws {
        try start()
        let out = dir.file("out")
        let r = try curl(["-o", out, "-w", "%{http_code} %{size_download}", "\(base)/blob"])
        XCTAssertEqual(r.stdout, "200 \(blob.count)")
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob))
    }

    /// Plain clients get file bodies by sendfile(2) or copied through the
    /// loop's copy buffer: whole, ranged, streamed from a local file or from
    /// a stream without one (read through the stream), and to a reader
    /// slower than the server (partial sends, the rest read again), the
    /// bytes must be exact.
    func testFileBodiesAreByteExactBySendfileAndByCopy() throws {
        for mode in ["on", "off"] {
            try start { $0.sendfile = mode == "on" }
            let out = dir.file("out-\(mode)")
            var r = try curl(["-o", out, "-w", "%{http_code} %{size_download}", "\(base)/blob"])
            XCTAssertEqual(r.stdout, "200 \(blob.count)", "\(mode)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob), "\(mode)")
            r = try curl(["-r", "300001-4500000", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
            XCTAssertEqual(r.stdout, "206", "\(mode)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob[300001...4500000]), "\(mode)")
            r = try curl(["--limit-rate", "24M", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
            XCTAssertEqual(r.stdout, "200", "\(mode)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob), "\(mode): slow reader")

            for local in [true, false] {
                let g = TestGrowingFile(path: dir.file("g-\(mode)-\(local)"), length: Int64(blob.count), local: local)
                growing.put("/growing/\(mode)-\(local)", g)
                let client = try BackgroundProcess(self, ["curl", "-sS", "-o", out, "\(base)/growing/\(mode)-\(local)"], logPath: dir.file("curl-\(mode)-\(local).log"))
                for i in stride(from: 0, to: blob.count, by: 1 << 20) {
                    g.append(Array(blob[i..<min(i + (1 << 20), blob.count)]))
                    usleep(10_000)
                }
                client.process.waitUntilExit()
                XCTAssertEqual(client.process.terminationStatus, 0, "\(mode): \(client.log)")
                XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob), "\(mode): stream, local file \(local)")
            }
            server?.shutdown(grace: 1)
            server = nil
        }
    }

    /// A file shorter than the length already promised is never padded and
    /// never takes the server down: the client gets the bytes that exist, then the connection closes.
    func testAFileCutShortEndsTheResponseAndTheServerGoesOn() throws {
        for mode in ["on", "off"] {
            try start { $0.sendfile = mode == "on" }
            let out = dir.file("short-\(mode)")
            let r = try curl(["-o", out, "-w", "%{http_code} %{size_download}", "\(base)/shrunk"])
            XCTAssertEqual(r.status, 18, "\(mode): curl reports a partial transfer: \(r.stderr)")
            XCTAssertEqual(r.stdout, "200 \((3 << 20) + 100)", "\(mode)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob[0..<((3 << 20) + 100)]), "\(mode)")
            let again = try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(base)/small"])
            XCTAssertEqual(again.stdout, "200", "\(mode): the server still answers")
            server?.shutdown(grace: 1)
            server = nil
        }
    }

    /// Request bodies reach a handler that asks for them, framed by a
    /// length or by chunks, whole and in order; the connection stays usable
    /// for the requests pipelined after the body.
    func testRequestBodiesByLengthAndByChunks() throws {
        try start()
        let expect = "\(Hasher.digest(blob).hex) \(blob.count)\n"
        let byLength = try curl(["-s", "--data-binary", "@\(dir.file("blob"))", "\(base)/digest"])
        XCTAssertEqual(byLength.stdout, expect)
        let chunked = try curl(["-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(dir.file("blob"))", "\(base)/digest"])
        XCTAssertEqual(chunked.stdout, expect)
        let c = try RawClient(port: port)
        c.send("POST /digest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
               + "POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nfg"
               + "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse().map { String(decoding: $0.body, as: UTF8.self) }, "\(Hasher.digest(Array("abcde".utf8)).hex) 5\n")
        XCTAssertEqual(c.readResponse().map { String(decoding: $0.body, as: UTF8.self) }, "\(Hasher.digest(Array("fg".utf8)).hex) 2\n")
        XCTAssertEqual(c.readResponse()?.body, Array("hello world".utf8), "the connection went on after two bodies")
        // Broken chunk framing: a 400, and the connection is not reused.
        let bad = try RawClient(port: port)
        bad.send("POST /digest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        XCTAssertEqual(bad.readResponse()?.status, 400)
    }

    /// The chunk decoder gives the same bytes however its input is split.
    func testChunkDecoderOnEverySplit() {
        let wire = Array("4\r\nWiki\r\n5;a=b\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX: y\r\n\r\nNEXT".utf8)
        for cut in 0...wire.count {
            var d = RequestBodyDecoder(.chunked)
            var out: [UInt8] = []
            var consumedTotal = 0
            var finished = false
            for part in [Array(wire[..<cut]), Array(wire[cut...])] where !finished {
                let step = part.withUnsafeBytes { d.feed($0) { out += $0; return true } }
                switch step {
                case .needMore: consumedTotal += part.count
                case .done(let n): consumedTotal += n; finished = true
                case .failed(let e): XCTFail("cut \(cut): \(e)"); finished = true
                }
            }
            XCTAssertEqual(String(decoding: out, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.", "cut \(cut)")
            XCTAssertEqual(wire.count - consumedTotal, 4, "cut \(cut): NEXT is left for the next request")
        }
        var d = RequestBodyDecoder(.contentLength(3))
        var got: [UInt8] = []
        XCTAssertEqual(Array("abcdef".utf8).withUnsafeBytes { d.feed($0) { got += $0; return true } }, .done(consumed: 3))
        XCTAssertEqual(got, Array("abc".utf8))
        var bad = RequestBodyDecoder(.chunked)
        XCTAssertEqual(Array("5\r\nabcdeXY".utf8).withUnsafeBytes { bad.feed($0) { _ in true } }, .failed(.malformed("chunk data not followed by CRLF")))
    }

    func testRangesHeadAnd304WithCurl() throws {
        try start()
        let out = dir.file("range")
        let r = try curl(["-r", "1000-1999", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
        XCTAssertEqual(r.stdout, "206")
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob[1000..<2000]))

        let suffix = try curl(["-H", "Range: bytes=-100", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
        XCTAssertEqual(suffix.stdout, "206")
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob[(blob.count - 100)...]))

        let bad = try curl(["-D", "-", "-o", "/dev/null", "-H", "Range: bytes=99999999-", "\(base)/blob"])
        XCTAssertTrue(bad.stdout.hasPrefix("HTTP/1.1 416"), bad.stdout)
        XCTAssertTrue(bad.stdout.contains("Content-Range: bytes */\(blob.count)"), bad.stdout)

        let stale = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Range: bytes=0-9", "-H", "If-Range: \"old\"", "\(base)/blob"])
        XCTAssertEqual(stale.stdout, "200", "If-Range with another ETag gets the whole body")

        let head = try curl(["-I", "\(base)/blob"])
        XCTAssertTrue(head.stdout.contains("Content-Length: \(blob.count)"), head.stdout)
        XCTAssertTrue(head.stdout.contains("Accept-Ranges: bytes"), head.stdout)

        let nm = try curl(["-D", "-", "-H", "If-None-Match: \"blob-etag\"", "\(base)/blob"])
        XCTAssertTrue(nm.stdout.hasPrefix("HTTP/1.1 304"), nm.stdout)
        XCTAssertFalse(nm.stdout.contains("Content-Length"))
    }

    func testPipelinedRequestsAnsweredInOrder() throws {
        try start()
        let c = try RawClient(port: port)
        // /later answers from another thread after a delay; /small must still come second.
        c.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\nHEAD /small HTTP/1.1\r\nHost: x\r\n\r\n")
        let a = c.readResponse(), b = c.readResponse(), h = c.readResponse(toHEAD: true)
        XCTAssertEqual(a.map { String(decoding: $0.body, as: UTF8.self) }, "later\n")
        XCTAssertEqual(b.map { String(decoding: $0.body, as: UTF8.self) }, "hello world")
        XCTAssertEqual(h?.status, 200)
        XCTAssertTrue(h?.head.contains("Content-Length: 11") ?? false)
    }

    func testGrowingBodyStreamsAsBytesArrive() throws {
        try start()
        let g = TestGrowingFile(path: dir.file("g1"), length: 3 << 20)
        growing.put("/growing/1", g)
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let out = dir.file("g1.out")
        let client = try BackgroundProcess(self, ["curl", "-sS", "-o", out, "-w", "%{http_code}", "\(base)/growing/1"], logPath: dir.file("curl.log"))
        // Feed slowly in pieces; the client must get the exact bytes.
        for i in stride(from: 0, to: payload.count, by: 256 << 10) {
            g.append(Array(payload[i..<min(i + (256 << 10), payload.count)]))
            usleep(20_000)
        }
        client.process.waitUntilExit()
        XCTAssertEqual(client.process.terminationStatus, 0, client.log)
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(payload))
    }

    func testFailedGrowingBodyCutsTheClient() throws {
        try start()
        let g = TestGrowingFile(path: dir.file("g2"), length: 1 << 20)
        growing.put("/growing/2", g)
        let out = dir.file("g2.out")
        let client = try BackgroundProcess(self, ["curl", "-sS", "-o", out, "\(base)/growing/2"], logPath: dir.file("curl2.log"))
        g.append([UInt8](repeating: 1, count: 1000))
        usleep(200_000)
        g.fail()
        client.process.waitUntilExit()
        XCTAssertEqual(client.process.terminationStatus, 18, "curl reports a partial transfer: \(client.log)")
        XCTAssertLessThan((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0, 1 << 20)
    }

    func testClientThatStopsReadingIsDropped() throws {
        try start { $0.sendTimeoutMillis = 1000 }
        let c = try RawClient(port: port)
        var small: Int32 = 4096
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        c.send("GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(200_000)
        XCTAssertEqual(server?.openConnections, 1)
        let deadline = Date().addingTimeInterval(6)
        while server?.openConnections != 0 && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(server?.openConnections, 0, "a stalled reader is dropped after send_timeout")
    }
}
