import Foundation
import XCTest

/// The console's JSON API used as a script would (curl with Basic
/// credentials): eviction keeps what other repositories or pins still
/// name, rights follow `writers` and `admins`, and garbage collection
/// previews before it removes.
final class ConsoleAPITests: XCTestCase {
    private func json(_ args: [String]) throws -> [String: Any] {
        let out = try curl(["-s"] + args).stdout
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    }

    private func code(_ args: [String]) throws -> String {
        try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}"] + args).stdout
    }

    func testEvictPinRightsAndGarbageCollection() throws {
        let up = try UpstreamRegistry(self)
        // The same image under two names: every blob is shared.
        try up.push(name: "team/a", tag: "v1", layers: 2, layerSize: 100_000, seed: "same")
        try up.push(name: "team/b", tag: "v1", layers: 2, layerSize: 100_000, seed: "same")
        let (m, dir) = try startWithUsers(self, """
        admins = alice
        [registry "up.test"]
        url = \(up.url)
        [hosted "team"]
        writers = bob
        """)
        let host = "127.0.0.1:\(m.port)"
        for repo in ["team/a", "team/b"] {
            let r = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(host)/up.test/\(repo):v1", "dir:\(dir.file(repo.replacingOccurrences(of: "/", with: "_")))"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let alice = ["-u", "alice:pw-a"], bob = ["-u", "bob:pw-b"]
        for repo in ["team/a", "team/b"] {
            XCTAssertTrue(eventually("\(repo) in the cache") { fullyCached(m.base, alice, source: "up.test", name: repo, tag: "v1") })
        }
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try curl(["-s"] + alice + ["\(m.base)/api/repositories"]).stdout.utf8)) as? [[String: Any]])
        let a = try XCTUnwrap(list.first { $0["name"] as? String == "team/a" })
        XCTAssertEqual(a["kind"] as? String, "cached")
        XCTAssertNotNil(a["last_pull"] as? String, "the pull is remembered")
        XCTAssertGreaterThan(a["size"] as? Int ?? 0, 100_000)
        XCTAssertEqual(a["unique_size"] as? Int, 0, "everything is shared with team/b")
        let blobsBefore = try XCTUnwrap(try json(alice + ["\(m.base)/api/status"])["cache"] as? [String: Any])["entries"] as? Int

        // Rights: bob writes to the hosted namespace but is no admin.
        XCTAssertEqual(try code(bob + ["-X", "DELETE", "\(m.base)/api/image?kind=cached&source=up.test&name=team/a&ref=v1"]), "403")
        XCTAssertEqual(try code(bob + ["-X", "POST", "\(m.base)/api/gc?dry_run=true"]), "403")
        XCTAssertEqual(try code(["-X", "POST", "\(m.base)/api/pins?kind=cached&source=up.test&name=team/a&ref=v1"]), "401")
        XCTAssertEqual(try code(alice + ["-X", "POST", "-H", "Origin: http://evil.example", "\(m.base)/api/pins?kind=cached&source=up.test&name=team/a&ref=v1"]), "403")

        // Evicting team/a removes its tag but no blob: team/b names them all.
        let first = try json(alice + ["-X", "DELETE", "\(m.base)/api/image?kind=cached&source=up.test&name=team/a&ref=v1"])
        XCTAssertEqual(first["blobs_removed"] as? Int, 0, "\(first)")
        XCTAssertEqual(try code(alice + ["\(m.base)/api/repository?kind=cached&source=up.test&name=team/a"]), "404")
        // Pinned, team/b's blobs survive its eviction too.
        XCTAssertEqual(try json(alice + ["-X", "POST", "\(m.base)/api/pins?kind=cached&source=up.test&name=team/b&ref=v1"])["pinned"] as? Bool, true)
        let pinned = try json(alice + ["-X", "DELETE", "\(m.base)/api/image?kind=cached&source=up.test&name=team/b&ref=v1"])
        XCTAssertEqual(pinned["blobs_removed"] as? Int, 0, "\(pinned)")
        // Pulled again and unpinned, its eviction removes manifest, config and layers.
        XCTAssertEqual(try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(host)/up.test/team/b:v1", "dir:\(dir.file("again"))"], timeout: 120).status, 0)
        XCTAssertTrue(eventually("team/b in the cache again") { fullyCached(m.base, alice, source: "up.test", name: "team/b", tag: "v1") })
        XCTAssertEqual(try json(alice + ["-X", "DELETE", "\(m.base)/api/pins?kind=cached&source=up.test&name=team/b&ref=v1"])["pinned"] as? Bool, false)
        let last = try json(alice + ["-X", "DELETE", "\(m.base)/api/image?kind=cached&source=up.test&name=team/b&ref=v1"])
        XCTAssertEqual(last["blobs_removed"] as? Int, 4, "\(last)")
        let blobsAfter = try XCTUnwrap(try json(alice + ["\(m.base)/api/status"])["cache"] as? [String: Any])["entries"] as? Int
        XCTAssertEqual(blobsAfter, (blobsBefore ?? 0) - 4)
        // The next pull fetches it again.
        XCTAssertEqual(try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(host)/up.test/team/b:v1", "dir:\(dir.file("third"))"], timeout: 120).status, 0)

        // Hosted: bob deletes a tag; garbage collection previews, then removes.
        let layout = dir.file("img")
        try makeImageLayout(layout, tag: "v1", layers: 1, layerSize: 50_000, seed: "hosted")
        XCTAssertEqual(try runCommand(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "bob:pw-b", "oci:\(layout):v1", "docker://\(host)/team/app:v1"], timeout: 120).status, 0)
        let image = try json(bob + ["\(m.base)/api/image?kind=hosted&source=team&name=app&ref=v1"])
        XCTAssertEqual(image["pushed_by"] as? String, "bob")
        let digest = try XCTUnwrap(image["digest"] as? String)
        XCTAssertEqual(try code(bob + ["-X", "DELETE", "\(m.base)/api/image?kind=hosted&source=team&name=app&ref=\(digest)"]), "200")
        let preview = try json(alice + ["-X", "POST", "\(m.base)/api/gc?dry_run=true"])
        XCTAssertEqual(preview["dry_run"] as? Bool, true)
        XCTAssertEqual((try json(alice + ["\(m.base)/api/status"])["hosted"] as? [[String: Any]])?.first?["name"] as? String, "team")
        // The grace period (default 1h) keeps the fresh blobs from this collection.
        let run = try json(alice + ["-X", "POST", "\(m.base)/api/gc?dry_run=false"])
        XCTAssertEqual(run["dry_run"] as? Bool, false)
        XCTAssertEqual(run["blobs"] as? Int, preview["blobs"] as? Int, "the preview said what the run did")
    }

    /// A mirrored chart repository: versions from the upstream index, files
    /// once the archive is cached (the console never fetches one itself).
    func testMirroredChartVersionsAndFiles() throws {
        let work = TempDir(self, "charts")
        let made = try runCommand(["python3", "-c", """
        import hashlib, io, tarfile
        files = {'demo/Chart.yaml': b'apiVersion: v2\\nname: demo\\nversion: 1.0.0\\nappVersion: "9.9"\\n',
                 'demo/values.yaml': b'image: web\\n'}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w:gz') as t:
            for name, data in files.items():
                i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
        data = buf.getvalue()
        open('\(work.path)/demo-1.0.0.tgz', 'wb').write(data)
        open('\(work.path)/index.yaml', 'w').write('apiVersion: v1\\nentries:\\n  demo:\\n  - name: demo\\n    version: 1.0.0\\n    appVersion: "9.9"\\n'
            '    created: "2026-11-02T10:00:00Z"\\n    digest: %s\\n    urls:\\n    - demo-1.0.0.tgz\\n' % hashlib.sha256(data).hexdigest())
        """])
        XCTAssertEqual(made.status, 0, made.stderr)
        let upstream = try StaticServer(self, directory: work.path, log: work.file("http.log"))
        let m = try AnchorageServer(self, config: "[charts \"up\"]\nurl = \(upstream.url)\n")
        XCTAssertEqual(try code(["\(m.base)/charts/up/index.yaml"]), "200")
        let repos = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try curl(["-s", "\(m.base)/api/charts"]).stdout.utf8)) as? [[String: Any]])
        let up = try XCTUnwrap(repos.first { $0["name"] as? String == "up" })
        XCTAssertEqual(up["kind"] as? String, "cached")
        let version = try XCTUnwrap(((up["charts"] as? [[String: Any]])?.first?["versions"] as? [[String: Any]])?.first)
        XCTAssertEqual(version["app_version"] as? String, "9.9")
        XCTAssertEqual(version["created"] as? String, "2026-11-02T10:00:00Z")
        XCTAssertEqual(version["cached"] as? Bool, false)
        let query = "\(m.base)/api/chart?repository=up&chart=demo&version=1.0.0"
        XCTAssertEqual(try code([query]), "404", "not fetched for the console")
        XCTAssertEqual(try code(["\(m.base)/charts/up/demo-1.0.0.tgz"]), "200")
        // The archive enters the cache once verified, which may finish just after the client got its last byte.
        XCTAssertTrue(try eventually("the archive in the cache") { try code([query]) == "200" })
        let files = try json([query])
        XCTAssertEqual((files["values.yaml"] as? [String: Any])?["text"] as? String, "image: web\n")
        XCTAssertEqual((files["README.md"] as? [String: Any])?["error"] as? String, "not in the chart")
    }
}
