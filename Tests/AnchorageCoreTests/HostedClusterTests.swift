import Foundation
import XCTest
@testable import AnchorageCore

/// Hosted namespaces on several nodes sharing a real S3-compatible store
/// (SeaweedFS): what is pushed to one node is read from any other, a
/// delete and a collection on a third are seen everywhere, and a store
/// that is down refuses pushes with 503 until it is back.
final class HostedClusterTests: XCTestCase {
    private func node(_ store: SeaweedStore, _ keys: String = "") throws -> AnchorageServer {
        try startWithUsers(self, "[hosted \"local\"]\nwriters = alice\ngrace_period = 0s\n\(keys)\n\(store.storageSection(bucket: "hosted-site", prefix: "p/"))").0
    }

    private func skopeo(_ args: [String]) throws -> RunResult {
        try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"] + args, timeout: 300)
    }

    /// Status and body of a request as alice.
    private func call(_ method: String, _ url: String) throws -> (String, String) {
        let r = try curl(["-u", "alice:pw-a", "-X", method, "-w", "\n%{http_code}", url]).stdout
        let parts = r.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(parts.last ?? ""), parts.dropLast().joined(separator: "\n"))
    }

    private func status(_ method: String, _ url: String) throws -> String {
        try curl(["-u", "alice:pw-a", "-X", method, "-o", "/dev/null", "-w", "%{http_code}", url]).stdout
    }

    private func digestOf(_ node: AnchorageServer, _ path: String) throws -> String? {
        try curl(["-sI", "-u", "bob:pw-b", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
                  "\(node.base)/v2/\(path)"]).stdout
            .split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }?.split(separator: " ").last.map(String.init)
    }

    func testAPushToOneNodeIsReadOnTheOthersDeletedAndCollectedEverywhere() throws {
        let store = try SeaweedStore(self, bucket: "hosted-site")
        defer { store.stop() }
        let a = try node(store, "immutable_tags = release-*"), b = try node(store, "immutable_tags = release-*"), c = try node(store, "immutable_tags = release-*")
        let dir = TempDir(self, "images")
        let single = dir.file("single"), multi = dir.file("multi"), other = dir.file("other")
        try makeImageLayout(single, tag: "v1", layers: 3, layerSize: 700_000, seed: "cluster-s")
        try makeImageLayout(multi, tag: "v2", layers: 2, layerSize: 100_000, seed: "cluster-m", multiarch: true)
        try makeImageLayout(other, tag: "v1", layers: 1, layerSize: 50_000, seed: "cluster-o")

        // Pushed to A (skopeo), an index with --all to B.
        let pushA = try skopeo(["--dest-creds", "alice:pw-a", "oci:\(single):v1", "docker://127.0.0.1:\(a.port)/local/team/app:v1"])
        XCTAssertEqual(pushA.status, 0, pushA.stderr + a.log.suffix(2000))
        let pushB = try skopeo(["--all", "--dest-creds", "alice:pw-a", "oci:\(multi):v2", "docker://127.0.0.1:\(b.port)/local/team/multi:v2"])
        XCTAssertEqual(pushB.status, 0, pushB.stderr + b.log.suffix(2000))
        let manifest = try XCTUnwrap(try digestOf(a, "local/team/app/manifests/v1"))
        let layers = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(single)/blobs/sha256/\(manifest.dropFirst(7))"))) as? [String: Any]
        let layerDigests = try XCTUnwrap(layers?["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String }
        XCTAssertEqual(layerDigests.count, 3)
        // In the bucket before the 201: content by digest, the tag as a record.
        for d in layerDigests + [manifest] {
            XCTAssertEqual(store.headStatus("hosted-site", "p/hosted/blobs/sha256/\(d.dropFirst(7))"), "200", d)
        }
        XCTAssertEqual(store.headStatus("hosted-site", "p/hosted/repositories/local/team/app/_manifests/tags/v1"), "200")

        // C, which received nothing, serves both byte for byte.
        let viaC = dir.file("via-c"), viaA = dir.file("via-a")
        for (node, out) in [(c, viaC), (a, viaA)] {
            let r = try skopeo(["--src-creds", "bob:pw-b", "docker://127.0.0.1:\(node.port)/local/team/app:v1", "dir:\(out)"])
            XCTAssertEqual(r.status, 0, r.stderr + node.log.suffix(2000))
        }
        XCTAssertEqual(try runCommand(["diff", "-r", viaA, viaC]).status, 0, "the image read through C differs from A's")
        for d in layerDigests { XCTAssertEqual(try sha256File("\(viaC)/\(d.dropFirst(7))"), d) }
        // A HEAD on a node without a copy answers from the bucket's size and copies nothing.
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: "\(single)/blobs/sha256/\(layerDigests[1].dropFirst(7))")[.size] as? Int)
        let head = try curl(["-sI", "-u", "bob:pw-b", "\(b.base)/v2/local/team/app/blobs/\(layerDigests[1])"]).stdout.lowercased()
        XCTAssertTrue(head.hasPrefix("http/1.1 200") && head.contains("content-length: \(size)\r\n"), head)
        let hex = layerDigests[1].dropFirst(7)
        XCTAssertFalse(FileManager.default.fileExists(atPath: b.dir.file("cache/hosted/blobs/sha256/\(hex.prefix(2))/\(hex)")), "a HEAD copied the blob")
        XCTAssertTrue(FileManager.default.fileExists(atPath: c.dir.file("cache/hosted/blobs/sha256/\(hex.prefix(2))/\(hex)")), "C's GET kept a copy")
        let multiC = try skopeo(["--all", "--src-creds", "bob:pw-b", "docker://127.0.0.1:\(c.port)/local/team/multi:v2", "oci:\(dir.file("multi-c")):v2"])
        XCTAssertEqual(multiC.status, 0, multiC.stderr + c.log.suffix(2000))
        XCTAssertTrue(try call("GET", "\(c.base)/v2/local/team/app/tags/list").1.contains(#"{"name":"local/team/app","tags":["v1"]}"#))

        // An immutable tag set on A cannot be moved from B: B reads the tag from the store.
        XCTAssertEqual(try skopeo(["--dest-creds", "alice:pw-a", "oci:\(other):v1", "docker://127.0.0.1:\(a.port)/local/team/other:release-1"]).status, 0)
        let release = try digestOf(a, "local/team/other/manifests/release-1")
        let moved = try skopeo(["--dest-creds", "alice:pw-a", "oci:\(single):v1", "docker://127.0.0.1:\(b.port)/local/team/other:release-1"])
        XCTAssertNotEqual(moved.status, 0, "an immutable tag was moved through another node")
        XCTAssertTrue(moved.stderr.contains("immutable"), moved.stderr)
        XCTAssertEqual(try digestOf(c, "local/team/other/manifests/release-1"), release)

        // Deleted on B (the manifest and both tags naming it): gone on A and C at once.
        XCTAssertEqual(try call("DELETE", "\(b.base)/v2/local/team/app/manifests/\(manifest)").0, "202")
        for node in [a, c] {
            let (status, body) = try call("GET", "\(node.base)/v2/local/team/app/manifests/v1")
            XCTAssertEqual(status, "404", body)
            XCTAssertTrue(body.contains("MANIFEST_UNKNOWN"), body)
        }
        // The blobs stay until a collection; B collects, and then no node serves them.
        XCTAssertEqual(try status("GET", "\(a.base)/v2/local/team/app/blobs/\(layerDigests[0])"), "200")
        let gc = try runCommand([try anchorageBinary(), "gc", "--hosted", "--config", b.dir.file("mirror.conf")])
        XCTAssertEqual(gc.status, 0, gc.stdout + gc.stderr)
        // At least the three layers, the config and the manifest (also what
        // the refused push to B left unreferenced).
        let removed = gc.stdout.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        XCTAssertGreaterThanOrEqual(removed, 5, gc.stdout)
        for d in layerDigests {
            for node in [a, b, c] { XCTAssertEqual(try status("GET", "\(node.base)/v2/local/team/app/blobs/\(d)"), "404", "\(d) on \(node.port)") }
            XCTAssertEqual(store.headStatus("hosted-site", "p/hosted/blobs/sha256/\(d.dropFirst(7))"), "404", d)
        }
        // What B never read itself is marked from the bucket and kept: the
        // image pushed to A under team/other.
        let otherViaC = try skopeo(["--src-creds", "bob:pw-b", "docker://127.0.0.1:\(c.port)/local/team/other:release-1", "dir:\(dir.file("other-c"))"])
        XCTAssertEqual(otherViaC.status, 0, otherViaC.stderr + c.log.suffix(2000))
        // What the index on B named is untouched.
        let multiAgain = try skopeo(["--all", "--src-creds", "bob:pw-b", "docker://127.0.0.1:\(a.port)/local/team/multi:v2", "oci:\(dir.file("multi-a")):v2"])
        XCTAssertEqual(multiAgain.status, 0, multiAgain.stderr)

        // One node collects at a time: a lease another node holds is respected.
        let until = Int64(Date().timeIntervalSince1970 * 1000) + 600_000
        let lease = try store.s3(["-X", "PUT", "--data-binary", "node-x:1\n\(until)\n", "-o", "/dev/null", "-w", "%{http_code}", "\(store.endpoint)/hosted-site/p/hosted/collection-lease"])
        XCTAssertEqual(lease.stdout, "200", lease.stderr)
        let refused = try runCommand([try anchorageBinary(), "gc", "--hosted", "--config", a.dir.file("mirror.conf")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stdout.contains("not collected: node-x:1 is collecting"), refused.stdout)
    }

    func testPushesGet503WhileTheStoreIsDownAndWorkAgainWhenItIsBack() throws {
        let store = try SeaweedStore(self, bucket: "hosted-site")
        defer { store.stop() }
        let a = try node(store), c = try node(store)
        let dir = TempDir(self, "images")
        let image = dir.file("image")
        try makeImageLayout(image, tag: "v1", layers: 2, layerSize: 300_000, seed: "down")
        XCTAssertEqual(try skopeo(["--dest-creds", "alice:pw-a", "oci:\(image):v1", "docker://127.0.0.1:\(a.port)/local/app:v1"]).status, 0)

        store.stop()
        let (status, body) = try call("POST", "\(a.base)/v2/local/app/blobs/uploads/")
        XCTAssertEqual(status, "503", body)
        XCTAssertTrue(body.contains("UNAVAILABLE") && body.contains("object store"), body)
        let push = try skopeo(["--dest-creds", "alice:pw-a", "oci:\(image):v1", "docker://127.0.0.1:\(a.port)/local/app:v2"])
        XCTAssertNotEqual(push.status, 0, "a push succeeded with the store down")
        // Reads need the store's records too: a clear 503, not a 404.
        XCTAssertEqual(try call("GET", "\(c.base)/v2/local/app/manifests/v1").0, "503")
        let ready = try curl(["\(a.base)/readyz"]).stdout
        XCTAssertTrue(ready.contains("object store \(store.endpoint) down"), ready)

        try store.start()
        XCTAssertTrue(eventually("store seen again") { (try? curl(["\(a.base)/readyz"]).stdout.contains("down")) == false })
        let again = try skopeo(["--dest-creds", "alice:pw-a", "oci:\(image):v1", "docker://127.0.0.1:\(a.port)/local/app:v2"])
        XCTAssertEqual(again.status, 0, again.stderr + a.log.suffix(2000))
        XCTAssertTrue(eventually("C serves v2") { (try? call("GET", "\(c.base)/v2/local/app/manifests/v2").0) == "200" })
        let r = try skopeo(["--src-creds", "bob:pw-b", "docker://127.0.0.1:\(c.port)/local/app:v1", "dir:\(dir.file("v1-c"))"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// cm-push's upload to one node: (status, body).
    private func cmPush(_ node: AnchorageServer, _ file: String, force: Bool = false) throws -> (String, String) {
        let r = try curl(["-s", "-u", "alice:pw-a", "-F", "chart=@\(file)", "-w", "\n%{http_code}", "\(node.base)/charts/team/api/charts\(force ? "?force" : "")"])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    private func versions(_ node: AnchorageServer) throws -> [String] {
        let list = try curl(["-s", "-u", "bob:pw-b", "\(node.base)/charts/team/api/charts"]).stdout
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String: [[String: Any]]], list)
        return all.flatMap { chart, vs in vs.compactMap { ($0["version"] as? String).map { "\(chart)-\($0)" } } }.sorted()
    }

    func testAChartUploadedToOneNodeIsServedByTheOthersAndConcurrentUploadsAreAllKept() throws {
        let store = try SeaweedStore(self, bucket: "hosted-site")
        defer { store.stop() }
        let section = "[charts \"team\"]\nhosted = true\nwriters = alice\n\(store.storageSection(bucket: "hosted-site"))"
        let a = try startWithUsers(self, section).0, b = try startWithUsers(self, section).0
        let helm = try Helm(self)
        let dir = TempDir(self, "charts")
        var packages: [String] = []
        for i in 0..<6 { packages.append(try helm.package(chart: "app", version: "1.\(i).0", in: dir.path, dest: dir.file("pkg"))) }

        // Uploaded to A, served by B: the index, the API and the archive byte for byte.
        XCTAssertEqual(try cmPush(a, packages[0]).0, "201")
        XCTAssertEqual(try versions(b), ["app-1.0.0"])
        let fetched = dir.file("via-b.tgz")
        XCTAssertEqual(try curl(["-s", "-u", "bob:pw-b", "-o", fetched, "-w", "%{http_code}", "\(b.base)/charts/team/app-1.0.0.tgz"]).stdout, "200")
        XCTAssertEqual(try sha256File(fetched), try sha256File(packages[0]))
        XCTAssertEqual(try cmPush(b, packages[0]).0, "409", "B knows A's version exists")
        XCTAssertEqual(try helm.run(["repo", "add", "team", "\(b.base)/charts/team", "--username", "bob", "--password", "pw-b"]).status, 0)
        try FileManager.default.createDirectory(atPath: dir.file("pulled"), withIntermediateDirectories: true)
        let pulled = try helm.run(["pull", "team/app", "--version", "1.0.0", "-d", dir.file("pulled")])
        XCTAssertEqual(pulled.status, 0, pulled.stderr)
        XCTAssertEqual(try sha256File(dir.file("pulled/app-1.0.0.tgz")), try sha256File(packages[0]))

        // Five uploads at once, spread over both nodes: the index is replaced
        // only over the version each node read, so none is lost.
        let uploads = packages.dropFirst().enumerated().map { i, p in
            "curl -s -o /dev/null -w '%{http_code}\\n' -u alice:pw-a -F chart=@\(p) \((i % 2 == 0 ? a : b).base)/charts/team/api/charts &"
        }
        let together = try runCommand(["bash", "-c", uploads.joined(separator: "\n") + "\nwait"], timeout: 120)
        let got = together.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(got, Array(repeating: "201", count: 5))
        let all = (0..<6).map { "app-1.\($0).0" }
        XCTAssertEqual(try versions(a), all)
        XCTAssertEqual(try versions(b), all)

        // Deleted through B: gone from A's index and archive.
        XCTAssertEqual(try curl(["-s", "-X", "DELETE", "-u", "alice:pw-a", "\(b.base)/charts/team/api/charts/app/1.0.0"]).stdout, "{\"deleted\":true}")
        XCTAssertFalse(try curl(["-s", "-u", "bob:pw-b", "\(a.base)/charts/team/index.yaml"]).stdout.contains("version: \"1.0.0\""))
        XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "bob:pw-b", "\(a.base)/charts/team/app-1.0.0.tgz"]).stdout, "404")

        // The store down: uploads get 503, the last known index is still served.
        store.stop()
        let down = try cmPush(a, packages[0], force: true)
        XCTAssertEqual(down.0, "503", down.1)
        XCTAssertTrue(down.1.contains("object store"), down.1)
        XCTAssertTrue(try curl(["-s", "-u", "bob:pw-b", "\(a.base)/charts/team/index.yaml"]).stdout.contains("version: \"1.5.0\""))
    }
}
