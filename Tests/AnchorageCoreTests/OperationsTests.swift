import Foundation
@testable import AnchorageCore
import XCTest

/// Metrics, health, the status page and API, and the operator CLI.
final class OperationsTests: XCTestCase {
    func testMetricsParseAndMoveAcrossAPull() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 300_000)
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        let pull = { (dir: String) throws in
            let r = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/team/app:v1", "dir:\(m.dir.file(dir))"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try pull("one")
        let first = try scrape(m)
        try pull("two")
        let second = try scrape(m)
        XCTAssertGreaterThan(first["anchorage_cache_requests_total{result=\"miss\"}"] ?? 0, 0)
        XCTAssertGreaterThan(second["anchorage_cache_requests_total{result=\"hit\"}"] ?? 0, first["anchorage_cache_requests_total{result=\"hit\"}"] ?? 0)
        XCTAssertGreaterThan(second["anchorage_http_requests_total{route=\"registry_blob\",status=\"200\"}"] ?? 0, 0)
        XCTAssertGreaterThan(second["anchorage_http_response_bytes_total{source=\"cache\"}"] ?? 0, 0)
        XCTAssertGreaterThan(second["anchorage_upstream_requests_total{outcome=\"ok\",upstream=\"up.test\"}"] ?? 0, 0)
        XCTAssertGreaterThan(second["anchorage_time_to_first_byte_seconds_count{result=\"hit\"}"] ?? 0, 0)
        XCTAssertGreaterThan(second["anchorage_cache_bytes"] ?? 0, 300_000)
        XCTAssertEqual(second["anchorage_upstream_circuit_open{upstream=\"up.test\"}"], 0)
        XCTAssertEqual(second["anchorage_upstream_blob_fetches_total"], first["anchorage_upstream_blob_fetches_total"], "the second pull fetched nothing")
    }

    /// Parses /metrics with the Prometheus client's own text parser (Debian's
    /// python3-prometheus-client) and returns "name{labels}" → value.
    private func scrape(_ m: AnchorageServer) throws -> [String: Double] {
        let script = """
        import sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        text = urllib.request.urlopen(sys.argv[1]).read().decode()
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                print(f"{s.name}{{{labels}}}" if labels else s.name, s.value)
        """
        let r = try runCommand(["/usr/bin/python3", "-c", script, "\(m.base)/metrics"])
        XCTAssertEqual(r.status, 0, "the exposition does not parse: \(r.stderr)")
        var out: [String: Double] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let sp = line.lastIndex(of: " "), let v = Double(line[line.index(after: sp)...]) else { continue }
            out[String(line[..<sp])] = v
        }
        return out
    }

    func testHealthAndReadiness() throws {
        let m = try AnchorageServer(self)
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n")
        XCTAssertEqual(try curl(["\(m.base)/readyz"]).stdout, "ready\n")
        // The cache directory stops being writable: not ready (root ignores
        // modes, so the temp directory is replaced by a file).
        let tmp = "\(m.dir.path)/cache/tmp"
        try FileManager.default.removeItem(atPath: tmp)
        FileManager.default.createFile(atPath: tmp, contents: Data())
        let r = try curl(["-w", "\n%{http_code}", "\(m.base)/readyz"]).stdout
        XCTAssertTrue(r.hasSuffix("\n503") && r.contains("not ready"), r)
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n", "alive all the same")
    }

    func testStatusAPIBrowsingAndThePageInARealBrowser() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/webapp", tag: "v7", layers: 2, layerSize: 200_000)
        try up.push(name: "team/multi", tag: "v1", layers: 1, multiarch: true)
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        for image in ["team/webapp:v7", "team/multi:v1"] {
            let r = try runCommand(["skopeo", "copy", "--quiet", "--all", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/\(image)", "dir:\(m.dir.file(image.replacingOccurrences(of: "/", with: "_")))"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let status = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try curl(["\(m.base)/api/status"]).stdout.utf8)) as? [String: Any])
        let cache = try XCTUnwrap(status["cache"] as? [String: Any])
        XCTAssertGreaterThan(cache["bytes"] as? Int ?? 0, 400_000)
        let top = ((status["top_repositories"] as? [String: Any])?["by_bytes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertTrue(top.contains("team/webapp"), "\(top)")
        let repos = try curl(["\(m.base)/api/repositories"]).stdout
        XCTAssertTrue(repos.contains("team/webapp") && repos.contains("team/multi"), repos)
        let repo = try curl(["\(m.base)/api/repository?kind=cached&source=up.test&name=team/multi"]).stdout
        let digest = try XCTUnwrap((((try JSONSerialization.jsonObject(with: Data(repo.utf8))) as? [String: Any])?["tags"] as? [[String: Any]])?.first?["digest"] as? String)
        let manifest = try curl(["\(m.base)/api/image?kind=cached&source=up.test&name=team/multi&ref=\(digest)"]).stdout
        XCTAssertTrue(manifest.contains("linux/arm64/v8") && manifest.contains("linux/amd64"), manifest)

        // The page, rendered by a real headless browser: the data shows up.
        let profile = TempDir(self, "chromium")
        let dom = try runCommand(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
                                  "--virtual-time-budget=8000", "--dump-dom", "\(m.base)/"], timeout: 120)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        XCTAssertTrue(dom.stdout.contains("team/webapp"), "status page lacks the cached repository")
        XCTAssertTrue(dom.stdout.contains("up.test") && dom.stdout.contains(">up<"), "status page lacks upstream health")
        XCTAssertTrue(dom.stdout.contains("% of"), "status page lacks the hit ratio")
        XCTAssertTrue(dom.stdout.contains("<script src=\"/console.js\"") && !dom.stdout.contains("<script src=\"http"), "no external scripts")
        // Keep a screenshot as a build artifact.
        var repoRoot = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { repoRoot.deleteLastPathComponent() }
        let artifacts = repoRoot.appendingPathComponent("test-artifacts").path
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        let shot = try runCommand(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
                                   "--virtual-time-budget=8000", "--window-size=1200,900", "--screenshot=\(artifacts)/status-page.png", "\(m.base)/"], timeout: 120)
        XCTAssertEqual(shot.status, 0, shot.stderr)
        XCTAssertGreaterThan((try? FileManager.default.attributesOfItem(atPath: "\(artifacts)/status-page.png")[.size] as? Int) ?? 0, 10_000)
    }

    func testStatsLsAndGc() throws {
        let up = try UpstreamRegistry(self)
        for i in 0..<3 { try up.push(name: "team/img\(i)", tag: "v1", layers: 1, layerSize: 500_000, seed: "g\(i)") }
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        for i in 0..<3 {
            XCTAssertEqual(try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/team/img\(i):v1", "dir:\(m.dir.file("p\(i)"))"], timeout: 120).status, 0)
        }
        let bin = try anchorageBinary(), conf = m.dir.file("mirror.conf")
        let stats = try runCommand([bin, "stats", "--config", conf, "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(s["repositories"] as? Int, 3)
        XCTAssertGreaterThan(s["bytes"] as? Int ?? 0, 1_500_000)
        let ls = try runCommand([bin, "ls", "images", "--config", conf])
        XCTAssertEqual(ls.stdout.split(separator: "\n").count, 3, ls.stdout)
        XCTAssertTrue(ls.stdout.contains("up.test/team/img1:v1\tsha256:"), ls.stdout)
        let gc = try runCommand([bin, "gc", "--to", "600KiB", "--config", conf])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        let after = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try runCommand([bin, "stats", "--config", conf, "--json"]).stdout.utf8)) as? [String: Any])
        XCTAssertLessThanOrEqual(after["bytes"] as? Int ?? Int.max, 600 * 1024)
        XCTAssertEqual(try runCommand([bin, "gc", "--config", conf]).status, 2, "gc without --to is a usage error")
        XCTAssertEqual(try runCommand([bin, "verify", "--config", conf]).status, 0)
    }
}

final class CountersTests: XCTestCase {
    /// Each loop records into its own shard; every reader sees the sum.
    func testResponsesFromEveryLoopAddUp() {
        let c = Counters()
        for loop in 0..<10 {
            var r = AccessRecord(method: "GET", label: RouteLabel(.registryManifest, repository: "library/alpine"), status: 200, bytes: 100,
                                 micros: 50, headMicros: 40, cache: loop.isMultiple(of: 2) ? .hit : .miss)
            r.loop = loop
            c.record(r)
        }
        var text = ""
        c.renderResponses(into: &text)
        XCTAssertTrue(text.contains(#"anchorage_http_requests_total{route="registry_manifest",status="200"} 10"#), text)
        XCTAssertTrue(text.contains(#"anchorage_cache_requests_total{result="hit"} 5"#), text)
        XCTAssertTrue(text.contains(#"anchorage_cache_requests_total{result="miss"} 5"#), text)
        XCTAssertTrue(text.contains(#"anchorage_time_to_first_byte_seconds_count{result="hit"} 5"#), text)
        XCTAssertEqual(c.lastHour.total, 10)
        XCTAssertEqual(c.lastHour.hits, 5)
        XCTAssertEqual(c.repositories["library/alpine"]?.pulls, 10)
        XCTAssertEqual(c.repositories["library/alpine"]?.bytes, 1000)
    }

    /// A shard keeps the last repository's use aside: interleaved
    /// repositories, statuses and loops still add up exactly, and at most
    /// 10,000 repositories are counted.
    func testRepositoriesAndStatusesAddUpWhenInterleaved() {
        let c = Counters()
        let labels = [RouteLabel(.registryManifest, repository: "a"), RouteLabel(.registryBlob, repository: "a"), RouteLabel(.registryManifest, repository: "b"),
                      RouteLabel(.registryManifest, repository: "a"), RouteLabel(.registryBlob, repository: "b"), ChartHandler.label("/charts/r/nginx-1.2.3.tgz"),
                      RouteLabel(.health)]
        for i in 0..<70 {
            var r = AccessRecord(method: "GET", label: labels[i % labels.count], status: i % 5 == 0 ? 404 : 200, bytes: 10,
                                 micros: 5, headMicros: 4, cache: i % 5 == 0 ? .error : .hit)
            r.loop = i % 3
            c.record(r)
        }
        // Per path 10 records, 2 of them 404 errors (i % 5 == 0 falls on each residue twice).
        XCTAssertEqual(c.repositories["a"]?.pulls, 16)
        XCTAssertEqual(c.repositories["a"]?.bytes, 240)
        XCTAssertEqual(c.repositories["b"]?.pulls, 8)
        XCTAssertEqual(c.repositories["b"]?.bytes, 160)
        XCTAssertEqual(c.repositories["charts/r/nginx"]?.pulls, 8)
        XCTAssertEqual(c.repositories.count, 3)
        var text = ""
        c.renderResponses(into: &text)
        XCTAssertTrue(text.contains(#"anchorage_http_requests_total{route="registry_manifest",status="200"} 24"#), text)
        XCTAssertTrue(text.contains(#"anchorage_http_requests_total{route="registry_manifest",status="404"} 6"#), text)
        XCTAssertTrue(text.contains(#"anchorage_http_requests_total{route="health",status="200"} 8"#), text)
        XCTAssertTrue(text.contains(#"anchorage_http_requests_total{route="registry_blob",status="404"} 4"#), text)

        let many = Counters()
        for i in 0..<10_005 {
            many.record(AccessRecord(method: "GET", label: RouteLabel(.registryManifest, repository: "r\(i)"), status: 200, bytes: 1, micros: 1, headMicros: 1, cache: .hit))
        }
        many.record(AccessRecord(method: "GET", label: RouteLabel(.registryManifest, repository: "r0"), status: 200, bytes: 1, micros: 1, headMicros: 1, cache: .hit))
        XCTAssertEqual(many.repositories.count, 10_000)
        XCTAssertEqual(many.repositories["r0"]?.pulls, 2)
    }
}
