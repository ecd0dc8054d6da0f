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
        let store = try SeaweedStore(self)
        defer { store.stop() }
        try store.createBucket("hosted-site")
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
        let store = try SeaweedStore(self)
        defer { store.stop() }
        try store.createBucket("hosted-site")
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
}
