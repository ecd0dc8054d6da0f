import Foundation
import XCTest
@testable import AnchorageCore

/// The pure parts of sync: rules, version ranges, schedules.
final class SyncRuleTests: XCTestCase {
    func testRulesParseAndErrorsNameTheLine() throws {
        let c = try Config.parse("""
        [registry "docker.io"]
        url = https://registry-1.docker.io
        default = true
        [registry "ghcr.io"]
        url = https://ghcr.io
        [charts "bitnami"]
        url = https://charts.example.com
        [sync]
        image = docker.io/library/alpine:3.20
        image = alpine:3
        image = ghcr.io/owner/app:~^v1\\.[0-9]+\\.[0-9]+$
        image = docker.io/library/nginx:>=1.26 <1.28
        image = ghcr.io/org/tool@sha256:\(String(repeating: "a", count: 64))
        chart = bitnami/nginx
        chart = bitnami/redis@>=18.0.0
        platforms = linux/amd64, linux/arm64/v8
        schedule = 30 2 * * *
        keep_latest = 5
        """, file: "s.conf")
        XCTAssertEqual(c.sync.rules.count, 7)
        XCTAssertEqual(c.sync.rules.map(\.rule.description), [
            "image docker.io/library/alpine:3.20", "image docker.io/library/alpine:3",
            "image ghcr.io/owner/app:~^v1\\.[0-9]+\\.[0-9]+$", "image docker.io/library/nginx:>=1.26 <1.28",
            "image ghcr.io/org/tool@sha256:\(String(repeating: "a", count: 64))", "chart bitnami/nginx", "chart bitnami/redis@>=18.0.0",
        ])
        XCTAssertEqual(c.sync.platforms ?? [], ["linux/amd64", "linux/arm64/v8"])
        XCTAssertEqual(c.sync.keepLatest, 5)

        func err(_ line: String) -> ConfigError? {
            do {
                _ = try Config.parse("[charts \"b\"]\nurl = https://x\n[sync]\n\(line)\n", file: "e.conf")
                return nil
            } catch { return error }
        }
        for bad in ["image = alpine", "image = alpine:~[unclosed", "image = alpine@sha256:xyz", "image = Bad/Name:1", "chart = nope/redis",
                    "chart = b/re dis", "chart = b/redis@>>1", "schedule = every now", "schedule = 61 * * * *", "platforms = linux"] {
            let e = err(bad)
            XCTAssertEqual(e?.line, 4, "\(bad): \(String(describing: e))")
        }
    }

    func testVersionRanges() throws {
        let r = try XCTUnwrap(VersionRange(">=1.26 <1.28"))
        XCTAssertTrue(r.contains("1.26.0") && r.contains("1.27.5") && r.contains("1.26"))
        XCTAssertFalse(r.contains("1.28.0") || r.contains("1.25.9") || r.contains("1.27.0-alpine") || r.contains("latest"))
        XCTAssertTrue(VersionRange("^1.2")!.contains("1.9.0") && !VersionRange("^1.2")!.contains("2.0.0"))
        XCTAssertTrue(VersionRange("^0.2.3")!.contains("0.2.9") && !VersionRange("^0.2.3")!.contains("0.3.0"))
        XCTAssertTrue(VersionRange("~1.2.3")!.contains("1.2.9") && !VersionRange("~1.2.3")!.contains("1.3.0"))
        XCTAssertTrue(VersionRange("1.2.x")!.contains("1.2.7") && !VersionRange("1.2.x")!.contains("1.3.0"))
        XCTAssertTrue(VersionRange("<1.0.0 || >=2.0.0")!.contains("0.5.0") && VersionRange("<1.0.0 || >=2.0.0")!.contains("2.1.0"))
        XCTAssertFalse(VersionRange("<1.0.0 || >=2.0.0")!.contains("1.5.0"))
        XCTAssertTrue(VersionRange(">=2.0.0-rc.1")!.contains("2.0.0-rc.2"))
        XCTAssertTrue(VersionRange(">=18.0.0")!.contains("v18.1.0"))
        XCTAssertNil(VersionRange(">>1"))
    }

    func testSchedules() throws {
        let utc = ISO8601DateFormatter()
        func at(_ s: String) -> Date { utc.date(from: s)! }
        XCTAssertEqual(Schedule("every 6h")?.next(after: at("2026-01-01T00:00:00Z")), at("2026-01-01T06:00:00Z"))
        XCTAssertNil(Schedule("every 0s"))
        XCTAssertNil(Schedule("every"))
        let nightly = try XCTUnwrap(Schedule("30 2 * * *"))
        XCTAssertEqual(nightly.next(after: at("2026-01-01T02:29:59Z")), at("2026-01-01T02:30:00Z"))
        XCTAssertEqual(nightly.next(after: at("2026-01-01T02:30:00Z")), at("2026-01-02T02:30:00Z"))
        // Every 15 minutes on weekdays (2026-01-03 is a Saturday).
        let weekdays = try XCTUnwrap(Schedule("*/15 * * * 1-5"))
        XCTAssertEqual(weekdays.next(after: at("2026-01-02T23:50:00Z")), at("2026-01-05T00:00:00Z"))
        // Sunday as 0 and 7.
        XCTAssertEqual(Schedule("0 0 * * 7")?.next(after: at("2026-01-01T00:00:00Z")), at("2026-01-04T00:00:00Z"))
        XCTAssertEqual(Schedule("0 0 * * 0")?.next(after: at("2026-01-01T00:00:00Z")), at("2026-01-04T00:00:00Z"))
        // Day-of-month OR day-of-week when both are set (Vixie cron).
        XCTAssertEqual(Schedule("0 0 13 * 5")?.next(after: at("2026-01-01T00:00:00Z")), at("2026-01-02T00:00:00Z"))
        // Feb 29 only in leap years; lists and ranges with steps.
        XCTAssertEqual(Schedule("0 12 29 2 *")?.next(after: at("2026-03-01T00:00:00Z")), at("2028-02-29T12:00:00Z"))
        XCTAssertEqual(Schedule("5,35 1-5/2 * * *")?.next(after: at("2026-01-01T01:36:00Z")), at("2026-01-01T03:05:00Z"))
        for bad in ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *"] {
            XCTAssertNil(Schedule(bad), bad)
        }
    }
}

/// `anchorage sync` against a real docker-registry and chart repository.
final class SyncIntegrationTests: XCTestCase {
    private func sync(_ m: AnchorageServer, _ args: [String] = []) throws -> RunResult {
        try runCommand([try anchorageBinary(), "sync", "--config", m.dir.file("mirror.conf")] + args, timeout: 300)
    }

    private func cached(_ m: AnchorageServer, _ digest: String) -> Bool {
        let hex = digest.dropFirst(7)
        return FileManager.default.fileExists(atPath: "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)")
    }

    func testRulesPlatformsIdempotenceAndDryRun() throws {
        let up = try UpstreamRegistry(self)
        for v in ["v1.0.0", "v1.1.0", "v1.2.0", "v2.0.0", "latest"] { try up.push(name: "team/app", tag: v, layers: 1, seed: v) }
        try up.push(name: "team/tool", tag: "1.0", layers: 1)
        let multi = try up.push(name: "team/multi", tag: "v1", layers: 1, multiarch: true)
        let toolDigest = try up.push(name: "team/tool", tag: "1.1", layers: 1, seed: "tool-1.1")
        let rules = """
        [sync]
        image = up.test/team/app:~^v1\\.[0-9]+\\.[0-9]+$
        image = up.test/team/app:>=1.1.0 <2.0.0
        image = up.test/team/tool:1.0
        image = up.test/team/tool@\(toolDigest)
        image = up.test/team/multi:v1
        platforms = linux/arm64/v8
        keep_latest = 2
        """
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n\(rules)")

        // Dry run: lists, counts bytes, touches nothing.
        let dry = try sync(m, ["--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stdout + dry.stderr)
        XCTAssertTrue(dry.stdout.contains("would fetch") && dry.stdout.contains("team/app:v1.2.0"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("total to fetch:"), dry.stdout)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(m.dir.path)/cache/blobs/sha256")) ?? [], [])

        let r = try sync(m, ["--json"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let items = (report["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        // Regex and range with keep_latest = 2: v1.2.0 and v1.1.0 (v1.0.0 and v2.0.0 excluded).
        XCTAssertEqual(Set(items), ["up.test/team/app:v1.2.0", "up.test/team/app:v1.1.0", "up.test/team/tool:1.0",
                                    "up.test/team/tool@\(toolDigest)", "up.test/team/multi:v1"], "\(items)")
        XCTAssertGreaterThan(report["bytes_fetched"] as? Int ?? 0, 0)

        // With the upstream gone, synced content pulls from the cache.
        let blobGetsAfterFirst = up.log.components(separatedBy: "/blobs/sha256:").count
        let second = try sync(m)
        XCTAssertEqual(second.status, 0, second.stdout + second.stderr)
        XCTAssertEqual(up.log.components(separatedBy: "/blobs/sha256:").count, blobGetsAfterFirst, "a second sync transfers no blob bytes")
        up.stop()
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"]
        for ok in ["team/app/manifests/v1.2.0", "team/tool/manifests/1.0", "team/multi/manifests/v1", "team/tool/manifests/\(toolDigest)"] {
            XCTAssertEqual(try curl(accept + ["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/\(ok)"]).stdout, "200", ok)
        }
        XCTAssertEqual(try curl(accept + ["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/app/manifests/v2.0.0"]).stdout, "503")
        // Platform filter: the arm64 child is local, the amd64 child is not.
        let index = try curl(accept + ["\(m.base)/v2/team/multi/manifests/v1"]).stdout
        let children = (try JSONSerialization.jsonObject(with: Data(index.utf8)) as? [String: Any])?["manifests"] as? [[String: Any]] ?? []
        for child in children {
            let d = child["digest"] as? String ?? ""
            let arch = (child["platform"] as? [String: Any])?["architecture"] as? String
            XCTAssertEqual(cached(m, d), arch == "arm64", "child \(arch ?? "?") cached: \(cached(m, d))")
        }
        XCTAssertEqual(multi.count, 71)
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")]).status, 0)
    }

    func testFailingRuleExitsOneAndTheRestIsFetched() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n[sync]\nimage = up.test/team/missing:v1\nimage = up.test/team/app:v1\n")
        let r = try sync(m)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("FAILED up.test/team/missing:v1"), r.stdout)
        up.stop()
        XCTAssertEqual(try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/app/manifests/v1"]).stdout, "200")
    }

    func testPinnedContentSurvivesEvictionAndOversizeIsRefused() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/pinned", tag: "v1", layers: 1, layerSize: 1_000_000)
        for i in 0..<5 { try up.push(name: "team/other\(i)", tag: "v1", layers: 1, layerSize: 1_000_000, seed: "o\(i)") }
        let m = try AnchorageServer(self, cacheKeys: "max_size = 3MiB\n", config: "[registry \"up.test\"]\nurl = \(up.url)\n[sync]\nimage = up.test/team/pinned:v1\n")
        XCTAssertEqual(try sync(m).status, 0)
        let pinnedLayer = try layerDigest(m, "team/pinned")
        // The daemon pulls far more than fits; LRU evicts everything but the pinned blob.
        for i in 0..<5 {
            let d = try layerDigest(m, "team/other\(i)")
            XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/other\(i)/blobs/\(d)"]).stdout, "200")
        }
        XCTAssertTrue(m.log.contains("msg=evicted"))
        XCTAssertTrue(cached(m, pinnedLayer), "pinned content is never evicted")

        // A pinned set larger than max_size fails clearly instead of thrashing.
        let small = try AnchorageServer(self, cacheKeys: "max_size = 500KiB\n", config: "[registry \"up.test\"]\nurl = \(up.url)\n[sync]\nimage = up.test/team/pinned:v1\n")
        let r = try sync(small)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("larger than [cache] max_size"), r.stdout)
    }

    func testChartRulesAndTheDaemonSchedule() throws {
        let helm = try Helm(self)
        let work = TempDir(self, "synccharts")
        let repo = work.file("repo")
        for v in ["1.0.0", "1.1.0", "2.0.0"] { _ = try helm.package(chart: "web", version: v, in: work.path, dest: repo) }
        XCTAssertEqual(try helm.run(["repo", "index", repo]).status, 0)
        let charts = try StaticServer(self, directory: repo, log: work.file("http.log"))
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try AnchorageServer(self, config: """
        [registry "up.test"]
        url = \(up.url)
        [charts "local"]
        url = \(charts.url)
        [sync]
        schedule = every 1s
        chart = local/web@>=1.0.0 <2.0.0
        image = up.test/team/app:v1
        """)
        // The daemon runs the sync on its own.
        let deadline = Date().addingTimeInterval(20)
        while !m.log.contains("msg=\"sync run\" ok=true") && Date() < deadline { usleep(200_000) }
        XCTAssertTrue(m.log.contains("msg=\"sync run\" ok=true"), m.log)
        XCTAssertEqual(charts.gets("/web-1.0.0.tgz"), 1)
        XCTAssertEqual(charts.gets("/web-1.1.0.tgz"), 1)
        XCTAssertEqual(charts.gets("/web-2.0.0.tgz"), 0, "outside the range")
        // Later scheduled runs fetch nothing new.
        usleep(2_500_000)
        XCTAssertEqual(charts.gets("/web-1.0.0.tgz"), 1)
        charts.proc.stop()
        up.stop()
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/charts/local/web-1.1.0.tgz"]).stdout, "200")
    }

    func testSyncWhileTheDaemonServesTheSameCache() throws {
        let up = try UpstreamRegistry(self)
        for i in 0..<3 { try up.push(name: "team/app\(i)", tag: "v1", layers: 3, layerSize: 4_000_000, seed: "c\(i)") }
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n[sync]\nimage = up.test/team/app0:v1\nimage = up.test/team/app1:v1\nimage = up.test/team/app2:v1\n")
        // Clients pull the same images through the daemon while the CLI syncs them.
        let script = """
        for i in 0 1 2; do
          skopeo copy --quiet --src-tls-verify=false docker://127.0.0.1:\(m.port)/team/app$i:v1 dir:\(m.dir.path)/pull$i > \(m.dir.path)/pull$i.log 2>&1 &
        done
        "\(try anchorageBinary())" sync --config "\(m.dir.file("mirror.conf"))" > \(m.dir.path)/sync.out 2>&1; echo "sync=$?"
        wait
        for i in 0 1 2; do [ -f \(m.dir.path)/pull$i/manifest.json ] && echo "pull$i=ok"; done
        """
        let r = try runCommand(["bash", "-c", script], timeout: 300)
        XCTAssertTrue(r.stdout.contains("sync=0"), r.stdout + ((try? String(contentsOfFile: m.dir.path + "/sync.out", encoding: .utf8)) ?? ""))
        for i in 0..<3 { XCTAssertTrue(r.stdout.contains("pull\(i)=ok"), r.stdout) }
        let v = try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")])
        XCTAssertEqual(v.status, 0, v.stdout)
        XCTAssertTrue(v.stdout.contains("0 bad"), v.stdout)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(m.dir.path)/cache/tmp")) ?? ["?"], [])
        // The synced images are pinned.
        let pins = (try? FileManager.default.contentsOfDirectory(atPath: "\(m.dir.path)/cache/pins")) ?? []
        XCTAssertEqual(pins.count, 3)
    }

    func testOnlyAndUnpinningRemovedRules() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/a", tag: "v1", layers: 1)
        try up.push(name: "team/b", tag: "v1", layers: 1, seed: "b")
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n[sync]\nimage = up.test/team/a:v1\nimage = up.test/team/b:v1\n")
        let only = try sync(m, ["--only", "team/b", "--json"])
        XCTAssertEqual(only.status, 0, only.stderr)
        let items = ((try JSONSerialization.jsonObject(with: Data(only.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        XCTAssertEqual(items, ["up.test/team/b:v1"])
        XCTAssertEqual(try sync(m).status, 0)
        let pins = "\(m.dir.path)/cache/pins"
        XCTAssertEqual((try FileManager.default.contentsOfDirectory(atPath: pins)).count, 2)
        // Remove rule b from the config: the next sync unpins its content.
        let conf = m.dir.file("mirror.conf")
        let text = try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "image = up.test/team/b:v1\n", with: "")
        try text.write(toFile: conf, atomically: true, encoding: .utf8)
        XCTAssertEqual(try sync(m).status, 0)
        let left = try FileManager.default.contentsOfDirectory(atPath: pins)
        XCTAssertEqual(left.count, 1)
        let pinned = try String(contentsOfFile: "\(pins)/\(left[0])", encoding: .utf8)
        XCTAssertTrue(pinned.contains("team/a:v1"), pinned)
    }

    private func layerDigest(_ m: AnchorageServer, _ name: String) throws -> String {
        let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/\(name)/manifests/v1"]).stdout
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
        return try XCTUnwrap((obj["layers"] as? [[String: Any]])?.first?["digest"] as? String)
    }
}
