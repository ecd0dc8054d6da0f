import Foundation
import XCTest
@testable import AnchorageCore

/// A hosted chart repository: the requests `helm cm-push` makes (the plugin
/// cannot be installed here, so curl makes them exactly: a multipart POST
/// with the `chart` field, `?force`), ChartMuseum's read and delete API, bad
/// packages, and helm using the repository.
final class HostedChartTests: XCTestCase {
    private func server(dir: TempDir? = nil) throws -> (AnchorageServer, TempDir) {
        try startWithUsers(self, "[charts \"team\"]\nhosted = true\nwriters = alice\n", dir: dir)
    }

    /// cm-push's upload: `POST <contextPath>/api/charts[?force]`, multipart field `chart` (and `prov`).
    private func cmPush(_ m: AnchorageServer, _ file: String, prov: String? = nil, force: Bool = false, user: String = "alice:pw-a") throws -> (status: String, body: String) {
        var args = ["-s", "-u", user, "-F", "chart=@\(file)"]
        if let prov { args += ["-F", "prov=@\(prov)"] }
        let r = try curl(args + ["-w", "\n%{http_code}", "\(m.base)/charts/team/api/charts\(force ? "?force" : "")"])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    func testChartMuseumAPIUploadsConflictsForceAndDeletes() throws {
        let helm = try Helm(self)
        let (m, dir) = try server()
        let v1 = try helm.package(chart: "app", version: "1.0.0", in: dir.path, dest: dir.file("pkg"))
        let v2 = try helm.package(chart: "app", version: "1.1.0", in: dir.path, dest: dir.file("pkg"))
        let prov = dir.write("pkg/app-1.1.0.tgz.prov", "-----BEGIN PGP SIGNED MESSAGE-----\nname: app\nversion: 1.1.0\n...\n")

        XCTAssertEqual(try cmPush(m, v1, user: "bob:pw-b").status, "403", "bob may not upload")
        let anon = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-F", "chart=@\(v1)", "\(m.base)/charts/team/api/charts"]).stdout
        XCTAssertEqual(anon, "401")
        let first = try cmPush(m, v1)
        XCTAssertEqual(first.status, "201")
        XCTAssertEqual(first.body, "{\"saved\":true}")
        let again = try cmPush(m, v1)
        XCTAssertEqual(again.status, "409")
        XCTAssertEqual(again.body, "{\"error\":\"file already exists\"}")
        XCTAssertEqual(try cmPush(m, v1, force: true).status, "201", "?force replaces")
        XCTAssertEqual(try cmPush(m, v2, prov: prov).status, "201")

        let bob = "bob:pw-b"
        let list = try curl(["-s", "-u", bob, "\(m.base)/charts/team/api/charts"]).stdout
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String: [[String: Any]]])
        XCTAssertEqual(all["app"]?.compactMap { $0["version"] as? String }, ["1.1.0", "1.0.0"], "newest first")
        let one = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try curl(["-s", "-u", bob, "\(m.base)/charts/team/api/charts/app/1.0.0"]).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(one["digest"] as? String, String(try sha256File(v1).dropFirst(7)))
        XCTAssertEqual(one["urls"] as? [String], ["app-1.0.0.tgz"])
        XCTAssertEqual(try curl(["-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-u", bob, "\(m.base)/charts/team/api/charts/app/9.9.9"]).stdout, "404")
        XCTAssertEqual(try curl(["-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-u", bob, "\(m.base)/charts/team/api/charts/app"]).stdout, "200")
        XCTAssertEqual(try curl(["-s", "-u", bob, "\(m.base)/charts/team/app-1.1.0.tgz.prov"]).stdout, try String(contentsOfFile: prov, encoding: .utf8))

        let index = try curl(["-s", "-u", bob, "\(m.base)/charts/team/index.yaml"]).stdout
        XCTAssertTrue(index.contains("serverInfo:\n  contextPath: /charts/team\n"), index)
        XCTAssertTrue(index.contains("digest: \"\(try sha256File(v2).dropFirst(7))\""), index)

        XCTAssertEqual(try curl(["-s", "-X", "DELETE", "-u", bob, "\(m.base)/charts/team/api/charts/app/1.1.0"]).stdout.contains("\"error\""), true, "bob may not delete")
        XCTAssertEqual(try curl(["-s", "-X", "DELETE", "-u", "alice:pw-a", "\(m.base)/charts/team/api/charts/app/1.1.0"]).stdout, "{\"deleted\":true}")
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", bob, "\(m.base)/charts/team/app-1.1.0.tgz.prov"]).stdout, "404", "the provenance goes too")
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", bob, "\(m.base)/charts/team/app-1.1.0.tgz"]).stdout, "404")
        XCTAssertFalse(try curl(["-s", "-u", bob, "\(m.base)/charts/team/index.yaml"]).stdout.contains("1.1.0"))
        XCTAssertEqual(try curl(["-s", "-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:pw-a", "\(m.base)/charts/team/api/charts/app/1.1.0"]).stdout, "404")

        // A raw package body works too, and everything survives a restart.
        let v3 = try helm.package(chart: "other", version: "0.3.0", in: dir.path, dest: dir.file("pkg"))
        let raw = try curl(["-s", "-u", "alice:pw-a", "--data-binary", "@\(v3)", "-H", "Content-Type: application/gzip", "-w", " %{http_code}", "\(m.base)/charts/team/api/charts"]).stdout
        XCTAssertEqual(raw, "{\"saved\":true} 201")
        m.stop()
        let (again2, _) = try server(dir: dir)
        let after = try curl(["-s", "-u", bob, "\(again2.base)/charts/team/index.yaml"]).stdout
        XCTAssertTrue(after.contains("  app:\n") && after.contains("  other:\n") && after.contains("version: \"1.0.0\""), after)
        XCTAssertEqual(try curl(["-s", "-u", bob, "\(again2.base)/charts/team/app-1.0.0.tgz", "-o", dir.file("back.tgz"), "-w", "%{http_code}"]).stdout, "200")
        XCTAssertEqual(try sha256File(dir.file("back.tgz")), try sha256File(v1))
    }

    func testBadPackagesAreRefusedWithAReason() throws {
        let helm = try Helm(self)
        let (m, dir) = try server()
        let good = try helm.package(chart: "good", version: "1.0.0", in: dir.path, dest: dir.file("pkg"))
        func refused(_ path: String, _ expect: String) throws {
            let r = try cmPush(m, path)
            XCTAssertEqual(r.status, "400", r.body)
            XCTAssertTrue(r.body.contains(expect), "\(expect) in \(r.body)")
        }
        try refused(dir.write("junk-1.0.0.tgz", "not gzip at all"), "not a gzip archive")
        XCTAssertEqual(try runCommand(["sh", "-c", "echo hello | gzip > \(dir.file("plain-1.0.0.tgz"))"]).status, 0)
        try refused(dir.file("plain-1.0.0.tgz"), "tar")
        let src = dir.file("nochart/x")
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        _ = dir.write("nochart/x/values.yaml", "a: 1\n")
        XCTAssertEqual(try runCommand(["tar", "-czf", dir.file("x-1.0.0.tgz"), "-C", dir.file("nochart"), "x"]).status, 0)
        try refused(dir.file("x-1.0.0.tgz"), "no Chart.yaml")
        _ = dir.write("noversion/y/Chart.yaml", "apiVersion: v2\nname: y\n")
        XCTAssertEqual(try runCommand(["tar", "-czf", dir.file("y-1.0.0.tgz"), "-C", dir.file("noversion"), "y"]).status, 0)
        try refused(dir.file("y-1.0.0.tgz"), "needs a name and a version")
        let renamed = dir.file("good-2.0.0.tgz")
        try FileManager.default.copyItem(atPath: good, toPath: renamed)
        try refused(renamed, "does not match the chart's good-1.0.0.tgz")
        XCTAssertFalse(try curl(["-s", "-u", "alice:pw-a", "\(m.base)/charts/team/index.yaml"]).stdout.contains("version:"), "nothing was stored")
    }

    func testHelmUsesTheHostedRepository() throws {
        let helm = try Helm(self)
        let (m, dir) = try server()
        let v1 = try helm.package(chart: "web", version: "2.0.0", in: dir.path, dest: dir.file("pkg"))
        XCTAssertEqual(try cmPush(m, v1).status, "201")
        XCTAssertEqual(try helm.run(["repo", "add", "team", "\(m.base)/charts/team", "--username", "bob", "--password", "pw-b"]).status, 0)
        let v2 = try helm.package(chart: "web", version: "2.1.0", in: dir.path, dest: dir.file("pkg"))
        XCTAssertEqual(try cmPush(m, v2).status, "201")
        XCTAssertEqual(try helm.run(["repo", "update"]).status, 0)
        let search = try helm.run(["search", "repo", "team/web", "--versions"]).stdout
        XCTAssertTrue(search.contains("2.0.0") && search.contains("2.1.0"), search)
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)   // helm 3.8 needs -d to exist
        XCTAssertEqual(try helm.run(["pull", "team/web", "--version", "2.1.0", "-d", out]).status, 0)
        XCTAssertEqual(try sha256File("\(out)/web-2.1.0.tgz"), try sha256File(v2), "byte-identical, verified by helm against the index digest")
        // What `helm install` does before it talks to a cluster: resolve, fetch, render.
        let rendered = try helm.run(["template", "demo", "team/web", "--version", "2.0.0"])
        XCTAssertEqual(rendered.status, 0, rendered.stderr)
        XCTAssertTrue(rendered.stdout.contains("helm.sh/chart: web-2.0.0"), rendered.stdout)
    }

    /// The package reader streams: a large file before Chart.yaml is
    /// skipped, not held; pax long names work; any split of the input reads
    /// the same.
    func testTarScannerFindsChartYamlAnySplit() throws {
        let dir = TempDir(self)
        let tarPath = dir.file("t.tar")
        let longDir = String(repeating: "d", count: 150)
        let script = """
        import io, tarfile, os
        with tarfile.open('\(tarPath)', 'w', format=tarfile.PAX_FORMAT) as t:
            big = os.urandom(3000000); i = tarfile.TarInfo('other/blob'); i.size = len(big); t.addfile(i, io.BytesIO(big))
            y = b'apiVersion: v2\\nname: x\\nversion: 1.0.0\\n'; i = tarfile.TarInfo('\(longDir)/Chart.yaml'); i.size = len(y); t.addfile(i, io.BytesIO(y))
        """
        XCTAssertEqual(try runCommand(["python3", "-c", script]).status, 0)
        let tar = try XCTUnwrap(FileManager.default.contents(atPath: tarPath).map { [UInt8]($0) })
        for step in [1, 7, 512, 4096, tar.count] {
            var scanner = TarScanner(limit: 1 << 20) { $0.split(separator: "/").count == 2 && $0.hasSuffix("/Chart.yaml") }
            var at = 0
            while at < tar.count {
                let end = min(at + step, tar.count)
                let more = tar[at..<end].withUnsafeBytes { scanner.feed($0) }
                at = end
                if !more { break }
            }
            XCTAssertNil(scanner.failure, "step \(step)")
            XCTAssertEqual(scanner.found.map { String(decoding: $0, as: UTF8.self) }, "apiVersion: v2\nname: x\nversion: 1.0.0\n", "step \(step)")
        }
        var bad = TarScanner(limit: 1 << 20) { _ in true }
        XCTAssertFalse(Array(repeating: UInt8(7), count: 600).withUnsafeBytes { bad.feed($0) })
        XCTAssertEqual(bad.failure, "not a tar archive (bad header)")
    }

    func testMultipartParsing() {
        let good = Array("--b\r\nContent-Disposition: form-data; name=\"chart\"; filename=\"dir/a-1.0.0.tgz\"\r\nContent-Type: application/gzip\r\n\r\nA\r\n-B\r\n--b\r\nContent-Disposition: form-data; name=\"prov\"\r\n\r\n\r\n--b--\r\n".utf8)
        let parts = Multipart.parse(good, boundary: "b")
        XCTAssertEqual(parts?.map(\.name), ["chart", "prov"])
        XCTAssertEqual(parts?.first?.fileName, "a-1.0.0.tgz", "only the last path component")
        XCTAssertEqual(parts?.first?.body, Array("A\r\n-B".utf8), "a part's bytes run to the next delimiter")
        XCTAssertEqual(parts?.last?.body, [])
        let nameless = Array("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n".utf8)
        XCTAssertNil(Multipart.parse(nameless, boundary: "b"), "a part without a name")
        XCTAssertEqual(Multipart.boundary("multipart/form-data; boundary=\"q q\""), "q q")
        XCTAssertNil(Multipart.boundary("application/json"))
        // Complete from "--b--" on (the final CRLF is optional).
        for cut in 0..<(good.count - 2) { XCTAssertNil(Multipart.parse(Array(good[..<cut]), boundary: "b"), "cut at \(cut)") }
    }
}
