import Foundation
import XCTest

/// The web console driven by a real browser (Debian's chromium and
/// chromedriver through Selenium, `Tests/bench/console_browser.py`) against
/// a running Anchorage holding pushed images (one a multi-arch index, one
/// with a hostile label), images cached from a real docker-registry, a
/// hosted chart and 10,000 more cached repositories. What the browser
/// changed is then checked from outside: skopeo, `anchorage ls`, the API.
final class ConsoleBrowserTests: XCTestCase {
    func testConsoleInARealBrowser() throws {
        let began = Date()
        func phase(_ what: String) { print("console test: \(what) at \(String(format: "%.1f", Date().timeIntervalSince(began))) s") }
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/webapp", tag: "v7", layers: 2, layerSize: 200_000, seed: "web")
        try up.push(name: "team/other", tag: "v1", layers: 1, layerSize: 50_000, seed: "other")
        for (i, tag) in ["v1", "v2", "v3"].enumerated() { try up.push(name: "team/synced", tag: tag, layers: 2, layerSize: 100_000, seed: "s\(i)") }

        let (m, dir) = try startWithUsers(self, """
        admins = alice
        [registry "up.test"]
        url = \(up.url)
        [hosted "team"]
        writers = alice, bob
        [charts "apps"]
        hosted = true
        writers = alice
        [sync]
        image = up.test/team/synced:~^v[0-9]+$
        """)
        let host = "127.0.0.1:\(m.port)"
        func skopeo(_ args: [String]) throws -> RunResult { try runCommand(["skopeo"] + args, timeout: 120) }

        phase("upstream ready, daemon started")
        // Pushed: a plain image with a <script> label and a second tag, and a multi-arch index.
        let app = dir.file("app"), multi = dir.file("multi")
        let made = try runCommand(["python3", testbenchScript("make_oci_image.py"), app, "--tag", "v1", "--layers", "3", "--layer-size", "150000", "--seed", "app",
                                   "--label", "evil=<script>window.pwned=1</script>", "--label", "org.opencontainers.image.title=demo app"])
        XCTAssertEqual(made.status, 0, made.stderr)
        try makeImageLayout(multi, tag: "v2", layers: 2, layerSize: 80_000, seed: "multi", multiarch: true)
        for (src, dest, all) in [("oci:\(app):v1", "team/app:v1", false), ("oci:\(app):v1", "team/app:old", false), ("oci:\(multi):v2", "team/multi:v2", true)] {
            let r = try skopeo(["copy", "--quiet"] + (all ? ["--all"] : []) + ["--dest-tls-verify=false", "--dest-creds", "alice:pw-a", src, "docker://\(host)/\(dest)"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        // Cached: pulled through from the upstream.
        for image in ["team/webapp:v7", "team/other:v1"] {
            let r = try skopeo(["copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(host)/up.test/\(image)", "dir:\(dir.file(image.replacingOccurrences(of: "/", with: "_")))"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        for name in ["team/webapp", "team/other"] {
            XCTAssertTrue(eventually("\(name) in the cache") { fullyCached(m.base, ["-u", "alice:pw-a"], source: "up.test", name: name, tag: name == "team/webapp" ? "v7" : "v1") })
        }
        // A hosted chart whose README and values carry markup.
        let chart = dir.file("demo-1.2.0.tgz")
        let pack = try runCommand(["python3", "-c", """
        import io, tarfile
        files = {'demo/Chart.yaml': b'apiVersion: v2\\nname: demo\\nversion: 1.2.0\\nappVersion: "4.5"\\ndescription: a <b>demo</b>\\n',
                 'demo/values.yaml': b'replicas: 2\\nbanner: "<img src=x onerror=window.pwned=2>"\\n',
                 'demo/README.md': b'# Demo\\n<script>window.pwned=3</script>\\n'}
        with tarfile.open('\(chart)', 'w:gz') as t:
            for name, data in files.items():
                i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
        """])
        XCTAssertEqual(pack.status, 0, pack.stderr)
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:pw-a", "-F", "chart=@\(chart)", "\(m.base)/charts/apps/api/charts"]).stdout, "201")

        phase("pushed, pulled, chart uploaded")
        // 10,000 more cached repositories, each a tag of the cached webapp image.
        let repo = try curl(["-s", "-u", "alice:pw-a", "\(m.base)/api/repository?kind=cached&source=up.test&name=team/webapp"]).stdout
        let webapp = try XCTUnwrap((((try? JSONSerialization.jsonObject(with: Data(repo.utf8))) as? [String: Any])?["tags"] as? [[String: Any]])?.first?["digest"] as? String, repo)
        let bulk = try runCommand(["python3", "-c", """
        import os, time
        record = "\(webapp)\\napplication/vnd.oci.image.manifest.v1+json\\n%d\\n" % (time.time() * 1000)
        for i in range(10000):
            tags = "\(dir.path)/cache/tags/up.test/bulk/repo%05d/_tags" % i
            os.makedirs(tags)
            with open(tags + "/v1", "w") as f: f.write(record)
        """])
        XCTAssertEqual(bulk.status, 0, bulk.stderr)
        phase("10,000 repositories written")
        var repoRoot = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { repoRoot.deleteLastPathComponent() }
        let artifacts = repoRoot.appendingPathComponent("test-artifacts/console").path
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        let browser = try runCommand(["/usr/bin/python3", testbenchScript("console_browser.py"), "--base", m.base, "--user", "alice", "--password", "pw-a",
                                      "--shots", artifacts, "--profile", dir.file("chromium")], timeout: 900)
        phase("browser done")
        print(browser.stdout)
        XCTAssertEqual(browser.status, 0, "browser test failed:\n\(browser.stdout)\n\(browser.stderr.suffix(4000))")
        let report = browser.stdout.split(separator: "\n").first { $0.hasPrefix("RESULT ") }.map { String($0.dropFirst(7)) }
        let result = try XCTUnwrap(report.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }, browser.stdout)
        XCTAssertEqual(result["repository_rows_in_dom"] as? Int, 100, "one page of the 10,004 repositories is drawn")

        // What the browser did, seen from outside.
        let deleted = try skopeo(["inspect", "--tls-verify=false", "--creds", "bob:pw-b", "docker://\(host)/team/app:old"])
        XCTAssertNotEqual(deleted.status, 0, "the tag deleted in the console is gone")
        XCTAssertEqual(try skopeo(["inspect", "--tls-verify=false", "--creds", "bob:pw-b", "docker://\(host)/team/app:v1"]).status, 0, "the other tag stays")
        let ls = try runCommand([try anchorageBinary(), "ls", "images", "--config", dir.file("mirror.conf")]).stdout
        let lines = ls.split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.hasPrefix("up.test/team/webapp:v7\t") && $0.hasSuffix("\tpinned") }, "pinned in the console, pinned for ls")
        XCTAssertTrue(lines.contains { $0.hasPrefix("up.test/team/other:v1\t") && !$0.hasSuffix("\tpinned") }, "the forged request pinned nothing")
        XCTAssertEqual(lines.filter { $0.hasPrefix("up.test/team/synced:") }.count, 3, "the sync run from the console fetched every tag")
        let sync = try curl(["-s", "-u", "alice:pw-a", "\(m.base)/api/sync"]).stdout
        let run = (((try? JSONSerialization.jsonObject(with: Data(sync.utf8))) as? [String: Any])?["history"] as? [[String: Any]])?.first
        XCTAssertEqual(run?["trigger"] as? String, "console (alice)", sync)
        XCTAssertEqual(run?["ok"] as? Bool, true, sync)
        // The same CSRF rule without a browser: a cookie alone does not act.
        let login = try curl(["-s", "-i", "-H", "Content-Type: application/json", "-d", #"{"user":"alice","password":"pw-a"}"#, "\(m.base)/api/session"]).stdout
        let cookie = try XCTUnwrap(login.components(separatedBy: "anchorage_session=").dropFirst().first?.prefix { $0 != ";" })
        let noToken = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-b", "anchorage_session=\(cookie)",
                                "\(m.base)/api/pins?kind=cached&source=up.test&name=team/other&ref=v1"]).stdout
        XCTAssertEqual(noToken, "403")
        let registryByCookie = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-b", "anchorage_session=\(cookie)", "\(m.base)/v2/team/app/tags/list"]).stdout
        XCTAssertEqual(registryByCookie, "401", "the session is the console's: the registry API takes Basic")
        let bobAdmin = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-u", "bob:pw-b", "\(m.base)/api/sync"]).stdout
        XCTAssertEqual(bobAdmin, "403", "bob is no admin")
    }
}
