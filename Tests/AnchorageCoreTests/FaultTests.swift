import Foundation
import XCTest
@testable import AnchorageCore

/// A lying, breaking, stalling upstream: nothing wrong is cached, no client
/// gets a complete wrong body, the daemon keeps serving, and a retry after
/// recovery succeeds.
final class FaultTests: XCTestCase {
    private struct Fault {
        let proc: BackgroundProcess
        let port: UInt16
        let blob: String
        let manifest: String
        var url: String { "http://127.0.0.1:\(port)" }

        func mode(_ m: String) throws {
            XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(url)/control?mode=\(m)"]).stdout, "200")
        }

        func blobGets() -> Int { proc.log.components(separatedBy: "\"GET /v2/fault/app/blobs/\(blob) ").count - 1 }
    }

    private func start() throws -> Fault {
        let dir = TempDir(self, "fault")
        let port = freePort()
        let p = try BackgroundProcess(self, ["python3", testbenchScript("fault_upstream.py"), "\(port)"], logPath: dir.file("fault.log"))
        XCTAssertTrue(p.waitForLog("\"ready\""), p.log)
        let first = try XCTUnwrap(p.log.split(separator: "\n").first)
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
        return Fault(proc: p, port: port, blob: info["blob"] as! String, manifest: info["manifest"] as! String)
    }

    private func cachedBlobs(_ m: AnchorageServer) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: "\(m.dir.path)/cache/blobs")) ?? []).filter { $0.split(separator: "/").count == 3 }
    }

    /// Bytes an upstream sends after a response ended (here a forged second
    /// response) are never taken as the answer to the next request sent on
    /// that kept-alive connection: it is closed and the request sent anew.
    func testBytesAfterAResponseNeverAnswerTheNextRequest() throws {
        let f = try start()
        let m = try AnchorageServer(self, config: "[log]\nlevel = debug\n[registry \"fault.test\"]\nurl = \(f.url)\n")
        // The start-up connection is back in libcurl's pool first, so the
        // requests below take the same handle, one after another.
        XCTAssertTrue(m.proc.waitForLog("upstream reachable"), m.log)
        try f.mode("smuggle")
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/manifests/v1"]).stdout, "200")
        XCTAssertTrue(f.proc.waitForLog("smuggled"), f.proc.log)
        // The next request goes out on that connection in libcurl's pool.
        for _ in 0..<2 {
            let out = try curl(["-w", "\n%{http_code}", "\(m.base)/v2/fault/app/manifests/v2"]).stdout
            XCTAssertTrue(out.hasSuffix("\n404") && !out.contains("forged"), "the smuggled response answered a request: \(out)")
        }
        XCTAssertTrue(m.log.contains("upstream connection held unread bytes"), m.log)
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/manifests/v1"]).stdout, "200", "the upstream is still used")
    }

    func testBrokenBlobTransfersAreNeverCachedAndRecover() throws {
        let f = try start()
        // Short stall timeout and no breaker interference for this test.
        let m = try AnchorageServer(self, config: """
        [upstream]
        stall_timeout = 2s
        breaker_threshold = 1000
        [registry "fault.test"]
        url = \(f.url)
        """)
        let blobURL = "\(m.base)/v2/fault/app/blobs/\(f.blob)"
        let expectedHex = String(f.blob.dropFirst(7))
        let cases: [(String, (RunResult) -> Bool)] = [
            ("close_mid", { $0.status != 0 }),
            ("short", { $0.status != 0 }),
            ("more", { $0.status != 0 }),
            ("stall", { $0.status != 0 }),
            ("wrong_bytes", { $0.status != 0 }),
            ("status:500", { $0.stdout.hasSuffix(" 503") }),
            ("status:502", { $0.stdout.hasSuffix(" 503") }),
            ("status:503", { $0.stdout.hasSuffix(" 503") }),
            ("redirect_loop", { $0.stdout.hasSuffix(" 503") }),
            ("status:429", { $0.stdout.hasSuffix(" 429") }),
            // Last: from here the upstream is not asked until its Retry-After passed.
            ("status:429:retry", { $0.stdout.hasSuffix(" 429") }),
        ]
        for (mode, failedAsExpected) in cases {
            try f.mode(mode)
            let out = m.dir.file("out-\(mode.replacingOccurrences(of: ":", with: "_"))")
            let r = try runCommand(["curl", "-sS", "-o", out, "-w", "%{size_download} %{http_code}", "--max-time", "30", blobURL], timeout: 60)
            XCTAssertTrue(failedAsExpected(r), "\(mode): \(r.stdout) rc=\(r.status)")
            // Whatever arrived, it is never the complete right body.
            let got = (try? runCommand(["sha256sum", out]).stdout.prefix(64)).map(String.init) ?? ""
            XCTAssertNotEqual(got, expectedHex, "\(mode): client holds the complete body of a failed transfer")
            XCTAssertTrue(cachedBlobs(m).isEmpty, "\(mode): something was cached: \(cachedBlobs(m))")
            XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n", "\(mode): daemon stopped serving")
        }
        XCTAssertTrue(m.log.contains("digest mismatch"), "wrong bytes detected")
        // A 429 with Retry-After reaches the client as TOOMANYREQUESTS with
        // that Retry-After, less the time that passed since.
        let retryAfter = try curl(["-D", "-", blobURL]).stdout
        let seconds = retryAfter.split(separator: "\r\n").first { $0.hasPrefix("Retry-After: ") }.flatMap { Int($0.dropFirst(13)) }
        XCTAssertTrue(retryAfter.hasPrefix("HTTP/1.1 429") && retryAfter.contains("TOOMANYREQUESTS"), retryAfter)
        XCTAssertTrue((1...7).contains(seconds ?? 0), retryAfter)

        // The upstream recovers. Until its Retry-After has passed the mirror
        // does not ask it and says so; then the next request succeeds and is cached.
        try f.mode("ok")
        let until = Date().addingTimeInterval(60)
        while try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", blobURL]).stdout != "200" && Date() < until { usleep(250_000) }
        let ok = try runCommand(["bash", "-c", "curl -sS --fail \(blobURL) | sha256sum"])
        XCTAssertTrue(ok.stdout.hasPrefix(expectedHex), ok.stdout + ok.stderr)
        usleep(200_000)
        XCTAssertEqual(cachedBlobs(m).count, 1)
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")]).status, 0)
    }

    func testManifestWithTheWrongDigestIsRefused() throws {
        let f = try start()
        let m = try AnchorageServer(self, config: "[registry \"fault.test\"]\nurl = \(f.url)\n")
        try f.mode("bad_manifest")
        let r = try curl(["-w", "\n%{http_code}", "\(m.base)/v2/fault/app/manifests/\(f.manifest)"]).stdout
        XCTAssertTrue(r.hasSuffix("\n502"), r)
        XCTAssertTrue(r.contains("does not match"), r)
        XCTAssertTrue(cachedBlobs(m).isEmpty)
        try f.mode("ok")
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/manifests/\(f.manifest)"]).stdout, "200")
    }

    /// Room is made for the bytes that arrive, not for the length an
    /// upstream promises: a 10 MB promise that ends after 2 MiB evicts no
    /// cached blob, and a blob larger than the whole cache evicts nothing.
    func testAPromisedLengthEvictsNothingThatArrivingBytesDoNotNeed() throws {
        let f = try start()
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/fill", tag: "v1", layers: 4, layerSize: 4_000_000)
        let manifest = try curl(["-s", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(up.url)/v2/team/fill/manifests/v1"]).stdout
        let descriptors = (try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])?["layers"] as? [[String: Any]] ?? []
        let layers = descriptors.compactMap { $0["digest"] as? String }
        let filled = descriptors.compactMap { $0["size"] as? Int }.reduce(0, +)
        XCTAssertEqual(layers.count, 4)
        // The cache has 8 MB to spare; the promise asks for 12.
        let maxSize = filled + 8_000_000
        let m = try AnchorageServer(self, cacheKeys: "max_size = \(maxSize)B\n", config: """
            [upstream]
            breaker_threshold = 1000
            [registry "up.test"]
            url = \(up.url)
            default = true
            [registry "fault.test"]
            url = \(f.url)
            """)
        func cached(_ d: String) -> Bool {
            let hex = d.dropFirst(7)
            return FileManager.default.fileExists(atPath: "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)")
        }
        for d in layers {
            XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/fill/blobs/\(d)"]).stdout, "200")
        }
        // An entry is committed (fsync, rename) just after its last byte went out.
        let until = Date().addingTimeInterval(30)
        while !layers.allSatisfy(cached) && Date() < until { usleep(50_000) }
        XCTAssertTrue(layers.allSatisfy(cached), "\(filled) bytes of \(maxSize) cached")
        for promise in [maxSize - filled + 4_000_000, 10 * maxSize] {
            try f.mode("promise:\(promise)")
            let r = try curl(["-s", "-o", "/dev/null", "\(m.base)/v2/fault.test/fault/app/blobs/\(f.blob)"])
            XCTAssertNotEqual(r.status, 0, "the client is cut off: \(promise)")
            XCTAssertEqual(layers.filter(cached).count, 4, "promise \(promise): no cached blob was evicted\n\(m.log)")
        }
        try f.mode("ok")
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault.test/fault/app/blobs/\(f.blob)"]).stdout, "200")
    }

    /// Requests for many distinct uncached blobs against a slow upstream:
    /// at most `InFlightTable.maxFetchesPerSource` fetches run (each a
    /// thread, a temp file and a connection); the rest are told 429 with
    /// Retry-After at once, and the slots come back when the fetches end.
    func testColdFetchesAreBoundedAndTheRestAreToldToRetry() throws {
        let f = try start()
        let m = try AnchorageServer(self, config: "[upstream]\nbreaker_threshold = 1000\nstall_timeout = 120s\n[registry \"fault.test\"]\nurl = \(f.url)\n")
        try f.mode("hang:20")
        let n = 150
        let out = m.dir.file("statuses")
        let clients = try BackgroundProcess(self, ["bash", "-c", """
            for i in $(seq 1 \(n)); do
              curl -s -o /dev/null -w '%{http_code}\\n' --max-time 120 \(m.base)/v2/fault/app/blobs/sha256:$(printf '%064x' $i) >> \(out) &
            done; wait
            """], logPath: m.dir.file("clients.log"))
        func count(_ status: String) -> Int {
            ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0 == status }.count
        }
        let limit = InFlightTable.maxFetchesPerSource
        let refused = Date().addingTimeInterval(60)
        while count("429") < n - limit && Date() < refused { usleep(100_000) }
        XCTAssertEqual(count("429"), n - limit, "all but \(limit) are refused at once")
        // While the admitted fetches hang: bounded threads and descriptors.
        let pid = m.proc.process.processIdentifier
        let threads = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("Threads:") }.flatMap { Int($0.split(separator: "\t").last ?? "") } ?? 0
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
        XCTAssertGreaterThan(threads, 0)
        XCTAssertLessThan(threads, limit + 50, "threads while \(limit) fetches hang")
        XCTAssertLessThan(fds, 2 * n, "descriptors while \(limit) fetches hang")
        let refusal = try curl(["-s", "-D", "-", "-o", "/dev/null", "\(m.base)/v2/fault/app/blobs/sha256:\(String(repeating: "f", count: 64))"]).stdout
        XCTAssertTrue(refusal.hasPrefix("HTTP/1.1 429") && refusal.contains("Retry-After: 1"), refusal)
        // The hung fetches end (404); their slots are free again.
        clients.process.waitUntilExit()
        XCTAssertEqual(count("404"), limit)
        try f.mode("ok")
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/blobs/\(f.blob)"]).stdout, "200")
    }

    /// A blob answered without a length (chunked, or ended by closing the
    /// connection) is accepted: its digest is what makes it safe. Clients,
    /// leader and followers, get it whole once it is verified, and it is cached.
    func testChunkedAndLengthlessBlobResponsesAreAccepted() throws {
        let f = try start()
        let expectedHex = String(f.blob.dropFirst(7))
        for mode in ["chunked", "eof"] {
            let m = try AnchorageServer(self, config: "[registry \"fault.test\"]\nurl = \(f.url)\n")
            try f.mode(mode)
            let url = "\(m.base)/v2/fault/app/blobs/\(f.blob)"
            let both = try runCommand(["bash", "-c", "(curl -sS --fail \(url) | sha256sum) & (curl -sS --fail \(url) | sha256sum) & wait"])
            XCTAssertEqual(both.stdout.split(separator: "\n").filter { $0.hasPrefix(expectedHex) }.count, 2, "\(mode): \(both.stdout) \(both.stderr)\n\(m.log)")
            let again = try curl(["-s", "-D", "-", "-o", "/dev/null", url]).stdout
            XCTAssertTrue(again.contains("Content-Length: 3000000"), again)
            XCTAssertTrue(f.blobGets() >= 1)
            let until = Date().addingTimeInterval(30)
            while cachedBlobs(m).isEmpty && Date() < until { usleep(50_000) }
            XCTAssertEqual(cachedBlobs(m).count, 1, "\(mode): cached after verification")
            m.stop()
        }
    }

    /// An upstream that accepts and never answers holds at most its share
    /// of the worker threads: a healthy upstream's tags and manifests are
    /// still answered while a dozen requests to the hung one wait (the old
    /// shared pool answered them only after the hung ones).
    func testAHungUpstreamDoesNotBlockTheOthers() throws {
        let f = try start()
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try AnchorageServer(self, config: """
            [upstream]
            workers = 4
            breaker_threshold = 1000
            stall_timeout = 120s
            [registry "up.test"]
            url = \(up.url)
            default = true
            [registry "fault.test"]
            url = \(f.url)
            """)
        try f.mode("hang:25")
        _ = try BackgroundProcess(self, ["bash", "-c", """
            for i in $(seq 1 12); do curl -s -o /dev/null --max-time 30 \(m.base)/v2/fault.test/fault/app/tags/list & done; wait
            """], logPath: m.dir.file("hung.log"))
        // The upstream holds the first of them (it says so when it starts to).
        func holding() -> Int { f.proc.log.components(separatedBy: "hanging /v2/fault/app/tags/list").count - 1 }
        let reached = Date().addingTimeInterval(20)
        while holding() < 2 && Date() < reached { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(holding(), 2, f.proc.log)
        // While they hang, the healthy upstream is answered.
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15", "\(m.base)/v2/team/app/tags/list"]).stdout, "200")
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "15",
                                 "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/app/manifests/v1"]).stdout, "200")
        XCTAssertLessThanOrEqual(holding(), 2, "at most its share (2 of 4 threads) waits on the hung upstream")
    }

    /// The referrers API is forwarded: the upstream's list, narrowed to an
    /// `artifactType` here, served from memory through an outage; a digest
    /// the upstream has none for stays 404.
    func testReferrersAreForwardedFilteredAndServedThroughAnOutage() throws {
        let f = try start()
        let m = try AnchorageServer(self, cacheKeys: "manifest_ttl = 0s\n", config: "[upstream]\nbreaker_threshold = 1000\n[registry \"fault.test\"]\nurl = \(f.url)\n")
        let url = "\(m.base)/v2/fault/app/referrers/\(f.manifest)"
        func types(_ query: String = "") throws -> (status: String, types: [String], filtered: Bool) {
            let r = try curl(["-s", "-D", "-", url + query]).stdout
            let parts = r.components(separatedBy: "\r\n\r\n")
            let obj = (try? JSONSerialization.jsonObject(with: Data(parts.dropFirst().joined().utf8))) as? [String: Any]
            let list = (obj?["manifests"] as? [[String: Any]] ?? []).compactMap { $0["artifactType"] as? String }
            return (String(parts[0].prefix(12)), list, parts[0].contains("OCI-Filters-Applied: artifactType"))
        }
        var r = try types()
        XCTAssertEqual(r.status, "HTTP/1.1 200")
        XCTAssertEqual(r.types, ["application/vnd.example.sbom", "application/vnd.example.sig"])
        r = try types("?artifactType=application/vnd.example.sig")
        XCTAssertEqual(r.types, ["application/vnd.example.sig"])
        XCTAssertTrue(r.filtered)
        try f.mode("status:503")
        r = try types()
        XCTAssertEqual(r.status, "HTTP/1.1 200", "the last list, through the outage")
        XCTAssertEqual(r.types.count, 2)
        try f.mode("ok")
        let none = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/referrers/sha256:\(String(repeating: "0", count: 64))"]).stdout
        XCTAssertEqual(none, "404")
    }

    /// An upstream 5xx's Retry-After (seconds or an HTTP date) reaches the
    /// client, for blobs and manifests alike.
    func testUpstreamRetryAfterIsPassedOn() throws {
        let f = try start()
        let m = try AnchorageServer(self, config: "[upstream]\nbreaker_threshold = 1000\n[registry \"fault.test\"]\nurl = \(f.url)\n")
        for (mode, expect) in [("status:503:retry", 7...7), ("status:503:date", 100...121), ("status:500:retry", 7...7)] {
            try f.mode(mode)
            for path in ["/v2/fault/app/blobs/\(f.blob)", "/v2/fault/app/manifests/\(f.manifest)"] {
                let head = try curl(["-s", "-o", "/dev/null", "-D", "-", "\(m.base)\(path)"]).stdout
                XCTAssertTrue(head.hasPrefix("HTTP/1.1 503"), "\(mode) \(path): \(head)")
                let after = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
                XCTAssertNotNil(after, "\(mode) \(path): \(head)")
                XCTAssertTrue(after.map(expect.contains) ?? false, "\(mode) \(path): Retry-After \(after ?? -1)")
            }
        }
        XCTAssertEqual(UpstreamError.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now: Date(timeIntervalSince1970: 1_445_412_420)), 60)
        XCTAssertEqual(UpstreamError.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now: Date(timeIntervalSince1970: 1_445_412_500)), 0)
        XCTAssertEqual(UpstreamError.retryAfter(" 30 "), 30)
        XCTAssertNil(UpstreamError.retryAfter("soon"))
        XCTAssertNil(UpstreamError.retryAfter("-5"))
    }

    func testCircuitBreakerMakesADownUpstreamCostNoWaiting() throws {
        let f = try start()
        let m = try AnchorageServer(self, config: "[upstream]\nbreaker_threshold = 2\nbreaker_cooldown = 30s\n[registry \"fault.test\"]\nurl = \(f.url)\n")
        try f.mode("status:503")
        for _ in 0..<2 { _ = try curl(["-o", "/dev/null", "\(m.base)/v2/fault/app/blobs/\(f.blob)"]) }
        let before = f.blobGets()
        let r = try curl(["-w", "\n%{http_code}", "\(m.base)/v2/fault/app/blobs/\(f.blob)"]).stdout
        XCTAssertTrue(r.hasSuffix("\n503") && r.contains("marked down"), r)
        XCTAssertEqual(f.blobGets(), before, "an open breaker does not ask the upstream")
        let metrics = try curl(["\(m.base)/metrics"]).stdout
        XCTAssertTrue(metrics.contains("anchorage_upstream_circuit_open{upstream=\"fault.test\"} 1"), metrics)
    }
}

/// The breaker opens on a down upstream and closes again once it is back:
/// after the cooldown one request probes, and its success closes it.
final class BreakerRecoveryTests: XCTestCase {
    func testAnUpstreamThatStopsAndStartsIsUsedAgainAfterTheCooldown() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 100_000)
        let m = try AnchorageServer(self, config: "[upstream]\nbreaker_threshold = 2\nbreaker_cooldown = 1s\n[registry \"up.test\"]\nurl = \(up.url)\n")
        let accept = "Accept: application/vnd.oci.image.manifest.v1+json"
        let manifest = try curl(["-s", "-H", accept, "\(up.url)/v2/team/app/manifests/v1"]).stdout
        let layers = ((try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])?["layers"] as? [[String: Any]] ?? []).compactMap { $0["digest"] as? String }
        XCTAssertEqual(layers.count, 2)
        func status(_ path: String) throws -> String {
            try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", accept, "\(m.base)\(path)"]).stdout
        }
        up.stop()
        // Down: failures open the breaker; from then on nothing waits for the upstream.
        XCTAssertTrue(try eventually("breaker open") {
            _ = try status("/v2/team/app/manifests/v1")
            return try curl(["\(m.base)/metrics"]).stdout.contains("anchorage_upstream_circuit_open{upstream=\"up.test\"} 1")
        })
        XCTAssertEqual(try status("/v2/team/app/blobs/\(layers[0])"), "503")
        try up.start()
        // Back: an uncached blob (whose path checks the breaker before it
        // fetches) and a tag are served again, without a restart.
        XCTAssertTrue(try eventually("blob served") { try status("/v2/team/app/blobs/\(layers[0])") == "200" }, m.proc.log)
        XCTAssertEqual(try status("/v2/team/app/manifests/v1"), "200")
        XCTAssertEqual(try status("/v2/team/app/blobs/\(layers[1])"), "200")
        XCTAssertTrue(try curl(["\(m.base)/metrics"]).stdout.contains("anchorage_upstream_circuit_open{upstream=\"up.test\"} 0"))
    }

    /// A 429 is not an outage: it holds requests for its Retry-After, and
    /// without one the next request asks again, however many came before.
    func testRateLimitsDoNotOpenTheBreaker() throws {
        let dir = TempDir(self, "fault")
        let port = freePort()
        let p = try BackgroundProcess(self, ["python3", testbenchScript("fault_upstream.py"), "\(port)"], logPath: dir.file("fault.log"))
        XCTAssertTrue(p.waitForLog("\"ready\""), p.log)
        let first = try XCTUnwrap(p.log.split(separator: "\n").first)
        let blob = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])?["blob"] as? String)
        let m = try AnchorageServer(self, config: "[upstream]\nbreaker_threshold = 2\nbreaker_cooldown = 1h\n[registry \"fault.test\"]\nurl = http://127.0.0.1:\(port)\n")
        func get() throws -> String {
            try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/fault/app/blobs/\(blob)"]).stdout
        }
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/control?mode=status:429"]).stdout, "200")
        for _ in 0..<4 { XCTAssertEqual(try get(), "429") }
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/control?mode=ok"]).stdout, "200")
        XCTAssertEqual(try get(), "200", "four 429s without Retry-After left the upstream usable (cooldown is an hour)")
    }
}

/// Bytes corrupted on disk behind the daemon's back.
final class CorruptionTests: XCTestCase {
    func testVerifyFindsABitFlipAndTheScrubberDropsAndRefetches() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1, layerSize: 2_000_000)
        let m = try AnchorageServer(self, cacheKeys: "scrub_rate = 1GiB\nscrub_interval = 1s\n", config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/app/manifests/v1"]).stdout
        let layer = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])?["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/app/blobs/\(layer)"]).stdout, "200")
        let hex = layer.dropFirst(7)
        let path = "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)"
        // A client gets a blob's last bytes before its entry is made durable
        // (fsync, then rename), so the file can appear just after the GET.
        func committed() -> Bool {
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(20_000) }
            return FileManager.default.fileExists(atPath: path)
        }
        XCTAssertTrue(committed(), "blob not committed to the cache")
        // Flip one bit in place.
        let fh = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        try fh.seek(toOffset: 1000)
        let byte = try XCTUnwrap(fh.readData(ofLength: 1).first)
        try fh.seek(toOffset: 1000)
        fh.write(Data([byte ^ 0x01]))
        try fh.close()
        let v = try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")])
        XCTAssertEqual(v.status, 1, v.stdout)
        XCTAssertTrue(v.stdout.contains("BAD \(layer)"), v.stdout)
        // The scrubber notices within a pass, drops the entry; the next GET re-fetches.
        let deadline = Date().addingTimeInterval(15)
        while FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(200_000) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "corrupt blob still cached")
        XCTAssertTrue(m.log.contains("corrupt blob removed"), m.log)
        let before = up.blobGets(layer)
        let r = try runCommand(["bash", "-c", "curl -sS --fail \(m.base)/v2/team/app/blobs/\(layer) | sha256sum"])
        XCTAssertTrue(r.stdout.hasPrefix(String(hex)), r.stdout)
        XCTAssertEqual(up.blobGets(layer), before + 1)
        XCTAssertTrue(try curl(["\(m.base)/metrics"]).stdout.contains("anchorage_corrupt_blobs_removed_total 1"))
        // After the scrub the cache verifies clean; a new flip is removed by `verify --repair`.
        XCTAssertTrue(committed(), "re-fetched blob not committed to the cache")
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")]).status, 0)
        usleep(300_000)
        let fh2 = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        try fh2.seek(toOffset: 5)
        fh2.write(Data([0xAA, 0xBB]))
        try fh2.close()
        let repair = try runCommand([try anchorageBinary(), "verify", "--repair", "--config", m.dir.file("mirror.conf")])
        XCTAssertEqual(repair.status, 0, repair.stdout)
        XCTAssertTrue(repair.stdout.contains("1 bad, 1 removed") || !FileManager.default.fileExists(atPath: path), repair.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}

/// A cache directory on a small tmpfs: a full disk is made room for by
/// eviction, never leaves a truncated entry, and is recovered from.
final class DiskFullTests: XCTestCase {
    func testFullDiskEvictsFailsCleanlyAndRecovers() throws {
        let dir = TempDir(self, "diskfull")
        let cache = dir.file("cache")
        try mountSmallDisk(self, at: cache, size: "8m")
        let up = try UpstreamRegistry(self)
        for i in 0..<3 { try up.push(name: "team/old\(i)", tag: "v1", layers: 1, layerSize: 2_000_000, seed: "old\(i)") }
        try up.push(name: "team/new", tag: "v1", layers: 1, layerSize: 4_000_000, seed: "new")
        try up.push(name: "team/huge", tag: "v1", layers: 1, layerSize: 12_000_000, seed: "huge")
        // max_size is generous: the disk, not the budget, is the limit here.
        let m = try AnchorageServer(self, cacheKeys: "max_size = 1GiB\nscrub_rate = 0\n", config: "[registry \"up.test\"]\nurl = \(up.url)\n", dir: dir)
        func layer(_ name: String) throws -> String {
            let man = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/\(name)/manifests/v1"]).stdout
            return try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(man.utf8)) as? [String: Any])?["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        }
        func fetch(_ name: String, _ d: String) throws -> (Bool, RunResult) {
            let r = try runCommand(["bash", "-c", "curl -sS --fail \(m.base)/v2/\(name)/blobs/\(d) | sha256sum"])
            return (r.stdout.hasPrefix(String(d.dropFirst(7))), r)
        }
        for i in 0..<3 { XCTAssertTrue(try fetch("team/old\(i)", layer("team/old\(i)")).0) }
        // 6 MB used of 8: the next 4 MB blob hits ENOSPC, evicts, and completes.
        let (ok, r) = try fetch("team/new", layer("team/new"))
        XCTAssertTrue(ok, r.stdout + r.stderr + m.log)
        XCTAssertTrue(m.log.contains("cache disk full: evicted to make room"), m.log)
        // Bigger than the whole disk: the client is cut, nothing truncated
        // stays, and nothing was evicted for it.
        let newLayer = try layer("team/new")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(cache)/blobs/sha256/\(newLayer.dropFirst(7).prefix(2))/\(newLayer.dropFirst(7))"))
        let huge = try layer("team/huge")
        let (hugeOK, _) = try fetch("team/huge", huge)
        XCTAssertFalse(hugeOK)
        XCTAssertTrue(m.log.contains("this blob cannot fit even with the cache evicted; nothing evicted"), m.log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(cache)/blobs/sha256/\(newLayer.dropFirst(7).prefix(2))/\(newLayer.dropFirst(7))"),
                      "the cache was not emptied for a blob that could never fit")
        let abandoned = m.log.split(separator: "\n").filter { $0.contains("transfer abandoned, nothing cached") }
        XCTAssertFalse(abandoned.isEmpty, m.log)
        XCTAssertTrue(abandoned.allSatisfy { $0.contains("No space left on device") }, "a full disk is named as such: \(abandoned)")
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(cache)/tmp")) ?? ["?"], [])
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")]).status, 0)
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n")
        // Space returns: the same request now succeeds.
        XCTAssertEqual(try runCommand(["mount", "-o", "remount,size=64m", cache]).status, 0)
        XCTAssertTrue(try fetch("team/huge", huge).0)
    }
}
