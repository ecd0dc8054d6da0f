import Foundation
import XCTest

/// Helm chart repositories through the mirror, with the real helm binary.
final class ChartMirrorTests: XCTestCase {
    private struct Setup {
        let helm: Helm
        let work: TempDir
        let repoA: String            // upstream A: relative URLs
        let serverA: StaticServer
        let alpha1: String, alpha2: String
    }

    private func setUpRepoA() throws -> Setup {
        let helm = try Helm(self)
        let work = TempDir(self, "charts")
        let repo = work.file("repo-a")
        let a1 = try helm.package(chart: "alpha", version: "0.1.0", in: work.path, dest: repo)
        let a2 = try helm.package(chart: "alpha", version: "0.2.0", in: work.path, dest: repo)
        XCTAssertEqual(try helm.run(["repo", "index", repo]).status, 0)
        let server = try StaticServer(self, directory: repo, log: work.file("a.log"))
        return Setup(helm: helm, work: work, repoA: repo, serverA: server, alpha1: a1, alpha2: a2)
    }

    func testRepoAddUpdateSearchPullTemplateWithRelativeAndAbsoluteURLs() throws {
        let s = try setUpRepoA()
        // Upstream B: its index points at absolute URLs on a third server C.
        let dirC = s.work.file("files-c"), dirB = s.work.file("repo-b")
        let beta = try s.helm.package(chart: "beta", version: "1.0.0", in: s.work.path, dest: dirC)
        let serverC = try StaticServer(self, directory: dirC, log: s.work.file("c.log"))
        try FileManager.default.createDirectory(atPath: dirB, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: beta, toPath: "\(dirB)/beta-1.0.0.tgz")
        XCTAssertEqual(try s.helm.run(["repo", "index", dirB, "--url", serverC.url]).status, 0)
        try FileManager.default.removeItem(atPath: "\(dirB)/beta-1.0.0.tgz")
        let serverB = try StaticServer(self, directory: dirB, log: s.work.file("b.log"))

        let m = try AnchorageServer(self, config: "[charts \"a\"]\nurl = \(s.serverA.url)\n[charts \"b\"]\nurl = \(serverB.url)/\n")
        XCTAssertEqual(try s.helm.run(["repo", "add", "mirror-a", "\(m.base)/charts/a"]).status, 0)
        XCTAssertEqual(try s.helm.run(["repo", "add", "mirror-b", "\(m.base)/charts/b"]).status, 0)
        XCTAssertEqual(try s.helm.run(["repo", "update"]).status, 0)
        let search = try s.helm.run(["search", "repo", "mirror-a/alpha", "--versions"]).stdout
        XCTAssertTrue(search.contains("0.1.0") && search.contains("0.2.0"), search)
        XCTAssertTrue(try s.helm.run(["search", "repo", "mirror-b/beta"]).stdout.contains("1.0.0"))

        let out = s.work.file("pulled")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(try s.helm.run(["pull", "mirror-a/alpha", "--version", "0.1.0", "-d", out]).status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(out)/alpha-0.1.0.tgz"), FileManager.default.contents(atPath: s.alpha1))
        let pb = try s.helm.run(["pull", "mirror-b/beta", "-d", out])
        XCTAssertEqual(pb.status, 0, pb.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(out)/beta-1.0.0.tgz"), FileManager.default.contents(atPath: beta))
        XCTAssertEqual(serverC.gets("/beta-1.0.0.tgz"), 1, "fetched from the absolute URL's host by the mirror")
        let tpl = try s.helm.run(["template", "demo", "mirror-a/alpha", "--version", "0.2.0"])
        XCTAssertEqual(tpl.status, 0, tpl.stderr)
        XCTAssertTrue(tpl.stdout.contains("kind: Deployment"))

        // Helm only ever saw the mirror: the served index has no upstream host.
        let index = try curl(["\(m.base)/charts/b/index.yaml"]).stdout
        XCTAssertFalse(index.contains("127.0.0.1:\(serverC.port)"), index)
        XCTAssertTrue(index.contains("- beta-1.0.0.tgz"), index)
        // A second pull is a cache hit: the upstream is not asked again.
        try FileManager.default.removeItem(atPath: "\(out)/alpha-0.1.0.tgz")
        XCTAssertEqual(try s.helm.run(["pull", "mirror-a/alpha", "--version", "0.1.0", "-d", out]).status, 0)
        XCTAssertEqual(s.serverA.gets("/alpha-0.1.0.tgz"), 1)
    }

    func testTamperedChartIsRefusedAndNotCached() throws {
        let s = try setUpRepoA()
        // Change bytes after the index was generated (same length).
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: s.alpha1))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: s.alpha1))
        let m = try AnchorageServer(self, config: "[charts \"a\"]\nurl = \(s.serverA.url)\n")
        XCTAssertEqual(try s.helm.run(["repo", "add", "mirror", "\(m.base)/charts/a"]).status, 0)
        let out = s.work.file("pulled")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for _ in 0..<2 {
            let r = try s.helm.run(["pull", "mirror/alpha", "--version", "0.1.0", "-d", out])
            XCTAssertNotEqual(r.status, 0, "helm must not get the tampered chart")
        }
        XCTAssertEqual(s.serverA.gets("/alpha-0.1.0.tgz"), 2, "never cached: fetched again")
        XCTAssertTrue(m.log.contains("digest mismatch"))
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")]).status, 0)
        // The untampered version still works.
        XCTAssertEqual(try s.helm.run(["pull", "mirror/alpha", "--version", "0.2.0", "-d", out]).status, 0)
    }

    func testUpstreamDownOrBrokenKeepsServingTheLastGoodIndex() throws {
        let s = try setUpRepoA()
        let m = try AnchorageServer(self, config: "[charts \"a\"]\nurl = \(s.serverA.url)\nindex_ttl = 1s\n")
        XCTAssertEqual(try s.helm.run(["repo", "add", "mirror", "\(m.base)/charts/a"]).status, 0)
        let out = s.work.file("pulled")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(try s.helm.run(["pull", "mirror/alpha", "--version", "0.1.0", "-d", out]).status, 0)
        let good = try curl(["\(m.base)/charts/a/index.yaml"]).stdout

        // A broken upstream index never replaces the good one.
        try "entries: [\n  this is: not an index".write(toFile: "\(s.repoA)/index.yaml", atomically: true, encoding: .utf8)
        usleep(1_200_000)
        _ = try curl(["\(m.base)/charts/a/index.yaml"])   // triggers the background refresh
        usleep(500_000)
        XCTAssertEqual(try curl(["\(m.base)/charts/a/index.yaml"]).stdout, good)
        XCTAssertTrue(m.log.contains("does not parse"), m.log)

        // Upstream gone: update and a cached chart still work.
        s.serverA.proc.stop()
        usleep(1_200_000)
        let upd = try s.helm.run(["repo", "update"])
        XCTAssertEqual(upd.status, 0, upd.stderr)
        try FileManager.default.removeItem(atPath: "\(out)/alpha-0.1.0.tgz")
        let pull = try s.helm.run(["pull", "mirror/alpha", "--version", "0.1.0", "-d", out])
        XCTAssertEqual(pull.status, 0, pull.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(out)/alpha-0.1.0.tgz"), FileManager.default.contents(atPath: s.alpha1))
    }

    func testBigIndexGzipETagAndSingleFlightRefresh() throws {
        let work = TempDir(self, "bigindex")
        // 10,000 entries in helm's own layout.
        var y = "apiVersion: v1\nentries:\n"
        for c in 0..<100 {
            y += "  chart\(c):\n"
            for v in 0..<100 {
                y += "  - apiVersion: v2\n    created: \"2026-01-01T00:00:00Z\"\n    description: Chart number \(c) version \(v)\n"
                y += "    digest: \(String(format: "%064x", c * 1000 + v))\n    name: chart\(c)\n    urls:\n    - https://example.invalid/chart\(c)-1.\(v).0.tgz\n    version: 1.\(v).0\n"
            }
        }
        y += "generated: \"2026-01-01T00:00:00Z\"\n"
        try y.write(toFile: work.file("index.yaml"), atomically: true, encoding: .utf8)
        let up = try StaticServer(self, directory: work.path, log: work.file("up.log"))
        let m = try AnchorageServer(self, config: "[charts \"big\"]\nurl = \(up.url)\n")
        let url = "\(m.base)/charts/big/index.yaml"
        // 8 clients at once while cold: one upstream fetch.
        let many = try runCommand(["bash", "-c", "for i in $(seq 1 8); do curl -s -o /dev/null -w '%{http_code}\\n' \(url) & done; wait"])
        XCTAssertEqual(many.stdout.split(separator: "\n"), Array(repeating: "200", count: 8))
        XCTAssertEqual(up.gets("/index.yaml"), 1)
        let body = try curl([url]).stdout
        XCTAssertEqual(body.components(separatedBy: "\n    - chart").count - 1, 10_000)
        XCTAssertFalse(body.contains("example.invalid"))
        let cold = try curl(["-o", "/dev/null", "-w", "%{time_total}", url]).stdout
        print("10,000-entry index: warm GET \(cold) s (see the log for the cold refresh)")
        // gzip on request only, identical content, distinct validators.
        let gz = try curl(["-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", url]).stdout
        XCTAssertTrue(gz.contains("Content-Encoding: gzip"), gz)
        XCTAssertEqual(try curl(["--compressed", url]).stdout, body)
        let plain = try curl(["-D", "-", "-o", "/dev/null", url]).stdout
        XCTAssertFalse(plain.contains("Content-Encoding"))
        let etag = try XCTUnwrap(plain.split(separator: "\r\n").first { $0.hasPrefix("ETag:") }?.dropFirst(6))
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: \(etag)", url]).stdout, "304")
    }

    func testProvenanceAndChartsWithoutDigest() throws {
        let s = try setUpRepoA()
        try "-----BEGIN PGP SIGNED MESSAGE-----\nfake provenance for the test\n".write(toFile: "\(s.repoA)/alpha-0.1.0.tgz.prov", atomically: true, encoding: .utf8)
        // Drop the digest line of the alpha 0.2.0 entry from the upstream index.
        var index = try String(contentsOfFile: "\(s.repoA)/index.yaml", encoding: .utf8)
        index = index.components(separatedBy: "\n  - ")
            .map { $0.contains("alpha-0.2.0.tgz") ? $0.split(separator: "\n").filter { !$0.contains("digest:") }.joined(separator: "\n") : $0 }
            .joined(separator: "\n  - ")
        try index.write(toFile: "\(s.repoA)/index.yaml", atomically: true, encoding: .utf8)
        let m = try AnchorageServer(self, config: "[charts \"a\"]\nurl = \(s.serverA.url)\n")

        let prov = try curl(["\(m.base)/charts/a/alpha-0.1.0.tgz.prov"]).stdout
        XCTAssertTrue(prov.contains("fake provenance"), prov)
        let nd = m.dir.file("nd.tgz")
        XCTAssertEqual(try curl(["-o", nd, "-w", "%{http_code}", "\(m.base)/charts/a/alpha-0.2.0.tgz"]).stdout, "200")
        XCTAssertEqual(FileManager.default.contents(atPath: nd), FileManager.default.contents(atPath: s.alpha2))
        XCTAssertTrue(m.log.contains("chart without digest in the index"), m.log)
        // Both now come from the cache.
        s.serverA.proc.stop()
        XCTAssertTrue(try curl(["\(m.base)/charts/a/alpha-0.1.0.tgz.prov"]).stdout.contains("fake provenance"))
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/charts/a/alpha-0.2.0.tgz"]).stdout, "200")
        // A .tgz response never claims a content encoding.
        XCTAssertFalse(try curl(["-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", "\(m.base)/charts/a/alpha-0.2.0.tgz"]).stdout.contains("Content-Encoding"))
    }

    func testOCIChartThroughTheRegistrySide() throws {
        let helm = try Helm(self)
        let work = TempDir(self, "oci")
        let chart = try helm.package(chart: "gamma", version: "0.3.0", in: work.path, dest: work.file("pkg"))
        let up = try UpstreamRegistry(self)
        let push = try helm.run(["push", chart, "oci://\(up.host)/charts"])
        XCTAssertEqual(push.status, 0, push.stderr)
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        let out = work.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let pull = try helm.run(["pull", "oci://127.0.0.1:\(m.port)/charts/gamma", "--version", "0.3.0", "-d", out])
        XCTAssertEqual(pull.status, 0, pull.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: "\(out)/gamma-0.3.0.tgz"), FileManager.default.contents(atPath: chart))
        XCTAssertTrue(m.accessLines("/v2/charts/gamma/").contains { $0.contains("/blobs/") && $0.contains("status=200") }, m.log)

        // A classic index whose entry points at oci://: served as the .tgz through the registry side.
        let digest = "sha256:" + (try runCommand(["sha256sum", chart]).stdout.prefix(64))
        let idx = work.file("idx")
        try FileManager.default.createDirectory(atPath: idx, withIntermediateDirectories: true)
        try """
        apiVersion: v1
        entries:
          gamma:
          - name: gamma
            version: 0.3.0
            digest: \(digest)
            urls:
            - oci://up.test/charts/gamma:0.3.0
        """.write(toFile: "\(idx)/index.yaml", atomically: true, encoding: .utf8)
        let ix = try StaticServer(self, directory: idx, log: work.file("idx.log"))
        let m2 = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n[charts \"o\"]\nurl = \(ix.url)\n")
        let got = work.file("via-index.tgz")
        XCTAssertEqual(try curl(["-o", got, "-w", "%{http_code}", "\(m2.base)/charts/o/gamma-0.3.0.tgz"]).stdout, "200", m2.log)
        XCTAssertEqual(FileManager.default.contents(atPath: got), FileManager.default.contents(atPath: chart))
    }
}
