import CLinux
import Foundation
import Glibc
import Synchronization
import XCTest
@testable import AnchorageCore

/// A growing body for tests: a writer appends to a temp file and publishes
/// the length; `fail()` cuts every reader off.
final class TestGrowingFile: GrowingSource, @unchecked Sendable {
    let fd: Int32
    let length: Int64
    private let state = Mutex<(published: Int64, failed: Bool, waiters: [(Int64, @Sendable () -> Void)])>((0, false, []))

    init(path: String, length: Int64) {
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        self.length = length
    }

    deinit { close(fd) }

    func append(_ bytes: [UInt8]) {
        let off = state.withLock { $0.published }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(off)) }
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

    func readable() -> Int64? {
        state.withLock { $0.failed ? nil : $0.published }
    }

    func notifyWhenReadable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            if s.failed || s.published > offset { return false }
            s.waiters.append((offset, wake))
            return true
        }
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
            case "/later":
                // Answer from another thread, as upstream-backed handlers do.
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { responder.respond(.text(.ok, "later")) }
            default:
                if req.path.hasPrefix("/growing/"), let g = growing.get(req.path) {
                    responder.respond(HTTPResponse(status: .ok, headers: h, body: .growing(g, offset: 0, length: g.length)))
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

    /// Runs `body` on a new thread pinned to `cpu` (a client whose packets
    /// the kernel processes on that CPU, as loopback does for its sender).
    private func onCPU<T>(_ cpu: Int32, _ body: @escaping () -> T) -> T {
        let box = PinnedRun(body)
        let t = Thread {
            XCTAssertEqual(anch_pin_current_thread(cpu), 0)
            box.value = box.body()
            box.done.signal()
        }
        t.start()
        box.done.wait()
        return box.value!
    }

    /// The CPUs of this process's threads that are pinned to one CPU.
    private func pinnedThreads() -> [String] {
        let tids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tids.compactMap { tid -> String? in
            let status = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8)
            return status?.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }.map { String($0.split(separator: "\t").last ?? "") }
        }.filter { !$0.contains("-") && !$0.contains(",") }
    }

    /// Starts one loop per usable CPU with `cpu_affinity = auto` and checks
    /// that each is pinned to its CPU; returns those CPUs, sorted, as
    /// `pinnedThreads` shows them.
    private func startPinnedLoops(sendfile: SendfileMode = .auto) throws -> [String] {
        let cpus = LoopCPUs.allowedCPUs()
        guard cpus.count >= 2 else { throw XCTSkip("needs two usable CPUs (has \(cpus.count))") }
        try start {
            $0.loops = cpus.count
            $0.cpuAffinity = .auto
            $0.sendfile = sendfile
        }
        let all = cpus.map { String($0) }.sorted()
        XCTAssertEqual(pinnedThreads().sorted(), all, "one loop pinned to each CPU")
        return all
    }

    /// `client` asks for the 8 MiB blob (more than the socket buffers hold
    /// before it reads): its loop floats while sending it, and is pinned
    /// again after it.
    private func assertLoopFloatsWhileSending(to client: RawClient, pinned all: [String]) {
        XCTAssertTrue(client.send("GET /blob HTTP/1.1\r\nHost: x\r\n\r\n"))
        let floating = Date().addingTimeInterval(2)
        while pinnedThreads().count != all.count - 1 && Date() < floating { usleep(10_000) }
        XCTAssertEqual(pinnedThreads().count, all.count - 1, "the sending loop floats")
        XCTAssertEqual(client.readResponse()?.body, blob)
        let repinned = Date().addingTimeInterval(2)
        while pinnedThreads().sorted() != all && Date() < repinned { usleep(10_000) }
        XCTAssertEqual(pinnedThreads().sorted(), all, "pinned again after the body")
    }

    /// With `sendfile = on` a loopback client's large body is not one of the
    /// loop's counted (copied) file bodies, but its loop floats all the same.
    func testALoopSendingByForcedSendfileToALocalClientFloats() throws {
        let all = try startPinnedLoops(sendfile: .on)
        assertLoopFloatsWhileSending(to: try RawClient(port: port), pinned: all)
    }

    func testPinnedLoopsServeEachConnectionOnTheCPUThatReceivedIt() throws {
        _ = try startPinnedLoops()
        let cpus = LoopCPUs.allowedCPUs()
        // Three clients on the last CPU, then three on the first: each goes
        // to the loop of its CPU, against SO_REUSEPORT's hash.
        let last = cpus.count - 1
        var clients: [RawClient] = []
        var expected = [Int](repeating: 0, count: cpus.count)
        for (cpu, loop) in [(cpus[last], last), (cpus[0], 0)] {
            clients += onCPU(cpu) { () -> [RawClient] in
                (0..<3).compactMap { _ in
                    guard let c = try? RawClient(port: self.port) else { return nil }
                    XCTAssertTrue(c.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"))
                    XCTAssertEqual(c.readResponse()?.status, 200)
                    return c
                }
            }
            expected[loop] = 3
            XCTAssertEqual(server?.connectionsPerLoop, expected)
        }
        // A client that moves: its connection follows it between requests.
        let mover = clients[0]
        onCPU(cpus[0]) {
            for _ in 0..<24 {
                XCTAssertTrue(mover.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"))
                XCTAssertEqual(mover.readResponse()?.body, Array("hello world".utf8))
            }
        }
        expected[0] = 4
        expected[last] = 2
        let deadline = Date().addingTimeInterval(2)
        while server?.connectionsPerLoop != expected && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(server?.connectionsPerLoop, expected)
        // It is still served, on its new loop, which floats while it sends
        // a large file body.
        assertLoopFloatsWhileSending(to: mover, pinned: cpus.map { String($0) }.sorted())
    }

    func testPlacementPrefersTheClientsLoopWithinASlack() {
        // No preference: the least busy loop, the accepting one on a tie.
        XCTAssertEqual(ConnectionPlacement.choose(preferred: nil, accepting: 1, open: [3, 3]), 1)
        XCTAssertEqual(ConnectionPlacement.choose(preferred: nil, accepting: 1, open: [2, 3]), 0)
        // The client's loop while it holds fewer than 4 (+1/8) more.
        XCTAssertEqual(ConnectionPlacement.choose(preferred: 1, accepting: 0, open: [0, 3]), 1)
        XCTAssertEqual(ConnectionPlacement.choose(preferred: 1, accepting: 0, open: [0, 4]), 0)
        XCTAssertEqual(ConnectionPlacement.choose(preferred: 0, accepting: 1, open: [50, 44]), 0)
        XCTAssertEqual(ConnectionPlacement.choose(preferred: 0, accepting: 1, open: [53, 44]), 1)
        // A preference outside the loops is ignored.
        XCTAssertEqual(ConnectionPlacement.choose(preferred: 5, accepting: 0, open: [1, 0]), 1)
    }

    func testFileBodyIsByteExact() throws {
        try start()
        let out = dir.file("out")
        let r = try curl(["-o", out, "-w", "%{http_code} %{size_download}", "\(base)/blob"])
        XCTAssertEqual(r.stdout, "200 \(blob.count)")
        XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob))
    }

    /// Plain clients get file bodies by sendfile(2) or copied, from mapped
    /// 1 MiB windows or through the loop's copy buffer (auto copies for
    /// loopback clients, as every test here is): whole, ranged (windows at
    /// unaligned offsets), growing, and to a reader slower than the server
    /// (partial sends, the rest mapped or read again), the bytes must be exact.
    func testFileBodiesAreByteExactBySendfileAndByCopy() throws {
        for mode in SendfileMode.allCases {
            try start { $0.sendfile = mode }
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

            let g = TestGrowingFile(path: dir.file("g-\(mode)"), length: Int64(blob.count))
            growing.put("/growing/\(mode)", g)
            let client = try BackgroundProcess(self, ["curl", "-sS", "-o", out, "\(base)/growing/\(mode)"], logPath: dir.file("curl-\(mode).log"))
            for i in stride(from: 0, to: blob.count, by: 1 << 20) {
                g.append(Array(blob[i..<min(i + (1 << 20), blob.count)]))
                usleep(10_000)
            }
            client.process.waitUntilExit()
            XCTAssertEqual(client.process.terminationStatus, 0, "\(mode): \(client.log)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob), "\(mode): growing")
            server?.shutdown(grace: 1)
            server = nil
        }
    }

    /// A file shorter than the length already promised is never padded and
    /// never takes the server down (a mapped window past the end of a file
    /// would raise SIGBUS if user space touched it; only the kernel does):
    /// the client gets the bytes that exist, then the connection closes.
    func testAFileCutShortEndsTheResponseAndTheServerGoesOn() throws {
        for mode in SendfileMode.allCases {
            try start { $0.sendfile = mode }
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

    /// Many file bodies on one loop: from the eighth on, a new body's socket
    /// gets a 512 KiB send buffer (the kernel reports it doubled); the first
    /// seven, and a lone body once the others are done, keep the kernel's
    /// autotuning (never exactly 1 MiB). The server's sockets live in this
    /// process, so the test reads their SO_SNDBUF by matching peer ports.
    func testBusyLoopCapsTheSendBuffersOfLaterFileBodies() throws {
        try startWithBodiesThatOutlastTheSendBuffer()
        try XCTUnwrap(server?.loopbackSend).use(.copy)  // sendfile's way keeps them uncapped
        let capped = SendBufferPolicy.cappedBytes * 2
        var clients: [RawClient] = []
        for i in 0..<10 {
            let c = try startBody()
            let size = serverSendBuffer(c)
            XCTAssertNotNil(size, "server side of connection \(i)")
            if i < SendBufferPolicy.busyLoop - 1 {
                XCTAssertNotEqual(size, capped, "body \(i + 1) of \(i + 1) on the loop")
            } else {
                XCTAssertEqual(size, capped, "body \(i + 1) of \(i + 1) on the loop")
            }
            clients.append(c)
        }
        for c in clients { XCTAssertEqual(c.readResponse()?.body, blob) }
        let lone = try startBody()
        XCTAssertNotEqual(serverSendBuffer(lone), capped, "a lone body after the others finished")
        XCTAssertEqual(lone.readResponse()?.body, blob)
    }

    /// When `LoopbackSendChooser` settled on sendfile, a busy loop's
    /// loopback bodies go out by sendfile, byte-exact, with uncapped send
    /// buffers, and are counted for the chooser; bytes sent while fewer than
    /// eight are open are copied and not counted.
    func testBusyLoopSendsByTheChoosersWay() throws {
        try startWithBodiesThatOutlastTheSendBuffer()
        let chooser = try XCTUnwrap(server?.loopbackSend)
        chooser.use(.sendfile)
        var clients: [RawClient] = []
        for i in 0..<10 {
            let c = try startBody()
            XCTAssertNotEqual(serverSendBuffer(c), SendBufferPolicy.cappedBytes * 2, "body \(i + 1)")
            clients.append(c)
        }
        for c in clients { XCTAssertEqual(c.readResponse()?.body, blob) }
        // Counted: what went out while ten to eight bodies were open, the
        // rest of bodies 1-3 among it (each more than half of the blob).
        XCTAssertGreaterThan(chooser.sentBytes, Int64(blob.count))
        XCTAssertLessThan(chooser.sentBytes, Int64(10 * blob.count))
        XCTAssertEqual(chooser.mode, .sendfile)
    }

    /// A growing body whose source is complete (an ingest that verified
    /// its digest while clients were still behind) counts as a file body
    /// of its loop and goes out the way the busy loop's chooser says, like
    /// a cached file; before, it was read and sent whatever the load.
    func testCompleteGrowingBodiesOnABusyLoopGoByTheChoosersWay() throws {
        try startWithBodiesThatOutlastTheSendBuffer()
        let chooser = try XCTUnwrap(server?.loopbackSend)
        chooser.use(.sendfile)
        let g = TestGrowingFile(path: dir.file("verified"), length: Int64(blob.count))
        g.append(blob)
        growing.put("/growing/verified", g)
        var clients: [RawClient] = []
        for _ in 0..<10 { clients.append(try startBody("/growing/verified")) }
        for c in clients { XCTAssertEqual(c.readResponse()?.body, blob) }
        XCTAssertGreaterThan(chooser.sentBytes, Int64(blob.count), "sent by the chooser's way while the loop was busy")
        XCTAssertLessThan(chooser.sentBytes, Int64(10 * blob.count))
    }

    /// Under `sendfile = auto` a lone large body to a loopback client goes
    /// the way `LoneStreamSendChooser` says at its start, byte-exact either
    /// way, and is one sample of its trial; two bodies that overlap are not.
    func testALoneLoopbackStreamIsSentAndMeasuredByTheLoneChooser() throws {
        blob = (0..<(Int(LoneStreamSendChooser.minBytes) + (1 << 20))).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        FileManager.default.createFile(atPath: dir.file("blob"), contents: Data(blob))
        try start()
        let lone = try XCTUnwrap(server?.loneSend)
        func awaitSamples(_ n: Int) {
            let until = Date().addingTimeInterval(5)
            while lone.samples < n && Date() < until { usleep(5_000) }
            XCTAssertEqual(lone.samples, n)
        }
        let out = dir.file("out")
        for n in 1...3 {
            let way = lone.mode
            XCTAssertEqual(way, LoopbackSendTrial.schedule[n - 1] ? .sendfile : .copy, "the trial's slot \(n - 1)")
            let before = lone.sentBySendfile
            let r = try curl(["-s", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
            XCTAssertEqual(r.stdout, "200", "\(way)")
            XCTAssertEqual(FileManager.default.contents(atPath: out), Data(blob), "\(way)")
            awaitSamples(n)
            XCTAssertEqual(lone.sentBySendfile - before, way == .sendfile ? Int64(blob.count) : 0, "\(way)")
        }
        // Slot 3 is sendfile: the first of two overlapping bodies began
        // alone and goes that way; the second began beside it and is copied.
        XCTAssertEqual(lone.mode, .sendfile)
        let before = lone.sentBySendfile
        let a = try startBody(), b = try startBody()
        XCTAssertEqual(a.readResponse()?.body, blob)
        XCTAssertEqual(b.readResponse()?.body, blob)
        XCTAssertEqual(lone.sentBySendfile - before, Int64(blob.count), "one of the two by sendfile")
        let r = try curl(["-s", "-o", out, "-w", "%{http_code}", "\(base)/blob"])
        XCTAssertEqual(r.stdout, "200")
        awaitSamples(4)   // the overlapping two were not samples: this lone one is the fourth
        usleep(50_000)
        XCTAssertEqual(lone.samples, 4)
    }

    /// One loop, and a blob larger than an unread client can take (its
    /// server side autotunes up to tcp_wmem's maximum, 4 MiB by default),
    /// so each body is still going out when the next one starts.
    private func startWithBodiesThatOutlastTheSendBuffer() throws {
        let wmemMax = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } } ?? 0
        if blob.count < 2 * wmemMax {
            blob = (0..<(2 * wmemMax + (1 << 20))).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
            FileManager.default.createFile(atPath: dir.file("blob"), contents: Data(blob))
        }
        try start { $0.loops = 1 }
    }

    /// A raw client whose GET of `path` has begun to arrive (nothing read yet).
    private func startBody(_ path: String = "/blob") throws -> RawClient {
        let c = try RawClient(port: port)
        XCTAssertTrue(c.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"))
        var b: UInt8 = 0
        XCTAssertEqual(recv(c.fd, &b, 1, Int32(MSG_PEEK)), 1, "the answer has begun")
        return c
    }

    /// SO_SNDBUF of the server's side of `c`: the server's sockets live in
    /// this process, found by matching peer ports.
    private func serverSendBuffer(_ c: RawClient) -> Int32? {
        let clientPort = Socket.boundPort(c.fd)
        for fd in Int32(3)..<4096 where fd != c.fd && Socket.boundPort(fd) == port {
            var peer = sockaddr_in(), len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let connected = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } } == 0
            guard connected, UInt16(bigEndian: peer.sin_port) == clientPort else { continue }
            var size: Int32 = 0, sl = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &sl) == 0 ? size : nil
        }
        return nil
    }

    func testSendfileModeDecidesByThePeersAddress() {
        let v4 = { (a: UInt8, b: UInt8, c: UInt8, d: UInt8) in PeerAddress(bytes: [a, b, c, d], port: 1) }
        let v6 = { (tail: [UInt8]) in PeerAddress(bytes: [UInt8](repeating: 0, count: 16 - tail.count) + tail, port: 1) }
        XCTAssertTrue(v4(127, 0, 0, 1).isLoopback)
        XCTAssertTrue(v4(127, 9, 8, 7).isLoopback)
        XCTAssertFalse(v4(10, 0, 0, 1).isLoopback)
        XCTAssertTrue(v6([1]).isLoopback)
        XCTAssertTrue(v6([0xff, 0xff, 127, 0, 0, 1]).isLoopback)
        XCTAssertFalse(v6([0xff, 0xff, 10, 0, 0, 1]).isLoopback)
        XCTAssertFalse(PeerAddress(bytes: [0xfd] + [UInt8](repeating: 0, count: 14) + [1], port: 1).isLoopback)
        XCTAssertFalse(SendfileMode.auto.usesSendfile(to: v4(127, 0, 0, 1)))
        XCTAssertTrue(SendfileMode.auto.usesSendfile(to: v4(192, 168, 1, 2)))
        XCTAssertTrue(SendfileMode.on.usesSendfile(to: v4(127, 0, 0, 1)))
        XCTAssertFalse(SendfileMode.off.usesSendfile(to: v4(192, 168, 1, 2)))
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

/// A closure run on another thread and its result, handed back after
/// `done` is signalled (the semaphore orders the accesses).
private final class PinnedRun<T>: @unchecked Sendable {
    let body: () -> T
    var value: T?
    let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping () -> T) { self.body = body }
}
