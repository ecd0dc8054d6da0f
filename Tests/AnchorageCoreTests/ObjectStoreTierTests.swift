import Foundation
import XCTest
@testable import AnchorageCore

/// Several nodes sharing a real S3-compatible store (SeaweedFS) as the
/// second tier behind each node's disk, against a real docker-registry
/// upstream: what one node fetched, the others serve from the store.
final class ObjectStoreTierTests: XCTestCase {
    private func node(_ up: UpstreamRegistry, _ store: SeaweedStore, bucket: String, prefix: String = "") throws -> AnchorageServer {
        try AnchorageServer(self, config: "[registry \"upstream.test\"]\nurl = \(up.url)\ndefault = true\n\(store.storageSection(bucket: bucket, prefix: prefix))")
    }

    /// The image's layer digests (from the upstream's manifest).
    private func layers(_ up: UpstreamRegistry, _ name: String, _ tag: String) throws -> [String] {
        let raw = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(up.url)/v2/\(name)/manifests/\(tag)"]).stdout
        let m = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any])
        return try XCTUnwrap(m["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String }
    }

    /// Pushes a one-layer image to the upstream; returns the layer's digest.
    private func pushLayer(_ up: UpstreamRegistry, _ name: String, size: Int) throws -> String {
        try up.push(name: name, tag: "v1", layers: 1, layerSize: size)
        return try layers(up, name, "v1")[0]
    }

    /// GETs a blob through a node; returns (status, sha256 of the body, X-Anchorage-Cache).
    private func pull(_ node: AnchorageServer, _ name: String, _ digest: String, into dir: TempDir) throws -> (String, String, String) {
        let file = dir.file("blob-\(UUID().uuidString.prefix(8))")
        let headers = dir.file("headers-\(UUID().uuidString.prefix(8))")
        let r = try curl(["-o", file, "-D", headers, "-w", "%{http_code}", "\(node.base)/v2/\(name)/blobs/\(digest)"])
        let cache = ((try? String(contentsOfFile: headers, encoding: .utf8)) ?? "").split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("x-anchorage-cache:") }.map { String($0.split(separator: " ").last ?? "") } ?? ""
        let sum = r.stdout == "200" ? try sha256File(file) : ""
        return (r.stdout, sum, cache)
    }

    private func metric(_ node: AnchorageServer, _ name: String) -> Int? {
        guard let text = try? curl(["\(node.base)/metrics"]).stdout else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
    }

    func testWhatOneNodeFetchedTheOthersServeFromTheStoreEvenWithTheUpstreamDown() throws {
        let store = try SeaweedStore(self, bucket: "shared")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 3_000_000)
        let digests = try layers(up, "team/app", "v1")
        let manifest = try XCTUnwrap(try curl(["-I", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(up.url)/v2/team/app/manifests/v1"]).stdout
            .split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }?.split(separator: " ").last.map(String.init))
        let a = try node(up, store, bucket: "shared", prefix: "site1")
        let b = try node(up, store, bucket: "shared", prefix: "site1")
        let c = try node(up, store, bucket: "shared", prefix: "site1")
        let out = TempDir(self, "pulls")

        // Node A pulls the image by tag with skopeo, from the upstream.
        let viaA = out.file("a")
        let pulled = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(a.port)/team/app:v1", "dir:\(viaA)"], timeout: 300)
        XCTAssertEqual(pulled.status, 0, pulled.stderr)
        for d in digests { XCTAssertEqual(up.blobGets(d), 1) }
        // A copies each verified blob and the manifest into the store under its digest.
        for d in digests + [manifest] {
            let key = "site1/blobs/sha256/\(d.dropFirst(7))"
            XCTAssertTrue(eventually("\(key) stored") { store.headStatus("shared", key) == "200" }, "never stored: \(key)\n\(a.log.suffix(2000))")
        }
        // Node B: the same bytes, from the store; the upstream is not asked.
        for d in digests {
            let (status, sum, cache) = try pull(b, "team/app", d, into: out)
            XCTAssertEqual(status, "200")
            XCTAssertEqual(sum, d)
            XCTAssertEqual(cache, "MISS", "a miss of B's own disk")
            XCTAssertEqual(up.blobGets(d), 1, "node B went to the upstream for \(d)")
        }
        XCTAssertEqual(metric(b, "anchorage_store_tier_hits_total"), digests.count)
        XCTAssertEqual(metric(b, "anchorage_upstream_blob_fetches_total"), 0)
        // Another node's copy is never overwritten: If-None-Match: * answers
        // 412 for what A stored, and B counts no write of its own.
        XCTAssertEqual(metric(b, "anchorage_store_tier_writes_total"), 0)

        // Node C, with an empty disk and the upstream stopped, serves the
        // whole image by digest (manifest, config and layers) with skopeo.
        up.stop()
        let viaC = out.file("c")
        let fromStore = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(c.port)/team/app@\(manifest)", "dir:\(viaC)"], timeout: 300)
        XCTAssertEqual(fromStore.status, 0, fromStore.stderr + c.log.suffix(2000))
        XCTAssertEqual(try runCommand(["diff", "-r", viaA, viaC]).status, 0, "the copy through C differs from A's")
        XCTAssertFalse(up.log.contains("\"GET /v2/team/app/manifests/sha256:"), "a manifest by digest went to the upstream")
    }

    func testAStoreThatGoesDownLeavesHitsAndMissesServedAndIsUsedAgainWhenBack() throws {
        let store = try SeaweedStore(self, bucket: "tier")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        let one = try pushLayer(up, "team/one", size: 2_000_000), two = try pushLayer(up, "team/two", size: 2_000_000)
        let three = try pushLayer(up, "team/three", size: 2_000_000)
        let a = try node(up, store, bucket: "tier")
        let out = TempDir(self, "pulls")
        XCTAssertEqual(try pull(a, "team/one", one, into: out).1, one)
        XCTAssertTrue(eventually("first blob stored") { metric(a, "anchorage_store_tier_writes_total") == 1 })

        store.stop()
        // A hit from the local tier.
        let hit = try pull(a, "team/one", one, into: out)
        XCTAssertEqual(hit.1, one)
        XCTAssertEqual(hit.2, "HIT")
        // A miss: the store cannot be asked, the upstream serves it.
        let miss = try pull(a, "team/two", two, into: out)
        XCTAssertEqual(miss.0, "200", a.log.suffix(2000).description)
        XCTAssertEqual(miss.1, two)
        let ready = try curl(["-w", "\n%{http_code}", "\(a.base)/readyz"]).stdout
        XCTAssertTrue(ready.hasSuffix("\n200"), "a node with its local tier and upstream is still ready: \(ready)")
        XCTAssertTrue(ready.contains("object store \(store.endpoint) down"), ready)
        XCTAssertEqual(metric(a, "anchorage_store_up"), 0)

        // Back: the node sees it without a restart and copies new blobs again.
        try store.start()
        XCTAssertTrue(eventually("store seen again") { metric(a, "anchorage_store_up") == 1 }, a.log.suffix(2000).description)
        let ready2 = try curl(["\(a.base)/readyz"]).stdout
        XCTAssertFalse(ready2.contains("down"), ready2)
        XCTAssertEqual(try pull(a, "team/three", three, into: out).1, three)
        XCTAssertTrue(eventually("third blob stored") { store.headStatus("tier", "blobs/sha256/\(three.dropFirst(7))") == "200" })
    }

    func testWrongCredentialsOrAMissingBucketStopStartUpNamingTheCause() throws {
        let store = try SeaweedStore(self, bucket: "exists")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        let dir = TempDir(self, "bad-store")
        func start(_ storage: String) throws -> RunResult {
            let conf = dir.write("mirror-\(UUID().uuidString.prefix(6)).conf", """
            [server]
            listen = 127.0.0.1:0
            [cache]
            path = \(dir.path)/cache
            [registry "upstream.test"]
            url = \(up.url)
            \(storage)
            """)
            return try runCommand([try anchorageBinary(), "serve", "--config", conf], timeout: 60)
        }
        let wrongSecret = try start(store.storageSection(bucket: "exists", secret: "not-the-secret"))
        XCTAssertEqual(wrongSecret.status, 1)
        XCTAssertTrue((wrongSecret.stdout + wrongSecret.stderr).contains("SignatureDoesNotMatch"), wrongSecret.stdout + wrongSecret.stderr)
        let noBucket = try start(store.storageSection(bucket: "missing"))
        XCTAssertEqual(noBucket.status, 1)
        XCTAssertTrue((noBucket.stdout + noBucket.stderr).contains("NoSuchBucket"), noBucket.stdout + noBucket.stderr)
        // A store that does not answer is no reason to refuse serving: the node starts.
        store.stop()
        let n = try AnchorageServer(self, config: "[registry \"upstream.test\"]\nurl = \(up.url)\n\(store.storageSection(bucket: "exists"))")
        XCTAssertTrue(n.log.contains("object store not reachable at start-up"), n.log)
        n.stop()
    }

    /// Requests signed by Anchorage's own SigV4 against SeaweedFS's checking:
    /// a good request works (the tests above), and a request dated an hour
    /// off, or signed with another secret, is refused with the store's code,
    /// which the node's messages carry.
    func testTheStoreChecksTheSignatureAndTheClock() throws {
        let store = try SeaweedStore(self, bucket: "signed")
        defer { store.stop() }
        func client(secret: String) throws -> S3Client {
            try XCTUnwrap(S3Client(StorageConfig.S3(endpoint: store.endpoint, bucket: "signed", region: "us-east-1", prefix: "", addressing: .path,
                                                    accessKey: store.accessKey, secretKey: secret, caFile: nil, tlsVerify: true)))
        }
        func list(_ c: S3Client, now: Date = Date()) -> String {
            let sink = CollectingSink(limit: 1 << 16)
            switch c.request("GET", key: nil, query: [("list-type", "2"), ("max-keys", "1")], sink: sink, now: now) {
            case .failure(let e): return "\(e)"
            case .success(let head): return head.status == 200 ? "200" : S3Client.errorText(status: head.status, body: sink.body)
            }
        }
        let good = try client(secret: store.secretKey)
        XCTAssertEqual(list(good), "200")
        let skewed = list(good, now: Date().addingTimeInterval(-3600))
        XCTAssertTrue(skewed.hasPrefix("403 RequestTimeTooSkewed"), skewed)
        let wrong = list(try client(secret: "wrong"))
        XCTAssertTrue(wrong.hasPrefix("403 SignatureDoesNotMatch"), wrong)
        // A key with characters that need encoding, written and read back.
        let dir = TempDir(self, "obj")
        let path = dir.write("body", "hello, object store")
        let file = try XCTUnwrap(OpenFile.openForReading(path))
        let put = CollectingSink(limit: 1 << 16)
        let r = good.request("PUT", key: "odd name+/ключ=1", headers: [("If-None-Match", "*")], body: UploadBody(file: file, offset: 0, length: 19), sink: put)
        XCTAssertEqual(try r.get().status, 200, String(decoding: put.body, as: UTF8.self))
        let again = good.request("PUT", key: "odd name+/ключ=1", headers: [("If-None-Match", "*")], body: UploadBody(file: file, offset: 0, length: 19), sink: CollectingSink(limit: 1 << 16))
        XCTAssertEqual(try again.get().status, 412, "a second write of the same name must not replace it")
        let get = CollectingSink(limit: 1 << 16)
        XCTAssertEqual(try good.request("GET", key: "odd name+/ключ=1", sink: get).get().status, 200)
        XCTAssertEqual(String(decoding: get.body, as: UTF8.self), "hello, object store")
    }

    /// `redirect = presigned`: a blob the bucket has is answered with a 307
    /// to a presigned bucket URL, which the client (curl, skopeo) follows;
    /// a blob it lacks is fetched and served as usual.
    func testPresignedRedirectSendsClientsToTheStore() throws {
        let store = try SeaweedStore(self, bucket: "redirect")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        let blob = try pushLayer(up, "team/app", size: 1_000_000), other = try pushLayer(up, "team/other", size: 1_000_000)
        let a = try node(up, store, bucket: "redirect")
        let out = TempDir(self, "pulls")
        XCTAssertEqual(try pull(a, "team/app", blob, into: out).1, blob)
        XCTAssertTrue(eventually("stored") { store.headStatus("redirect", "blobs/sha256/\(blob.dropFirst(7))") == "200" })

        let r = try AnchorageServer(self, config: "[registry \"upstream.test\"]\nurl = \(up.url)\ndefault = true\n\(store.storageSection(bucket: "redirect"))\nredirect = presigned")
        let first = try curl(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "\(r.base)/v2/team/app/blobs/\(blob)"]).stdout
        XCTAssertTrue(first.hasPrefix("307 \(store.endpoint)/redirect/blobs/sha256/\(blob.dropFirst(7))?X-Amz-Algorithm=AWS4-HMAC-SHA256"), first)
        XCTAssertTrue(first.contains("X-Amz-Signature="), first)
        let followed = out.file("followed")
        XCTAssertEqual(try curl(["-L", "-o", followed, "-w", "%{http_code}", "\(r.base)/v2/team/app/blobs/\(blob)"]).stdout, "200")
        XCTAssertEqual(try sha256File(followed), blob)
        XCTAssertEqual(up.blobGets(blob), 1)
        // Not in the bucket: fetched from the upstream through the node.
        let (status, sum, cache) = try pull(r, "team/other", other, into: out)
        XCTAssertEqual([status, sum, cache], ["200", other, "MISS"])
    }

    /// An object whose bytes do not hash to its name (damaged in the store,
    /// or written there by something else) never reaches a client whole: the
    /// transfer is cut off, the object deleted, and the next request is
    /// served from the upstream.
    func testAnObjectThatDoesNotMatchItsDigestIsNeverServedAndIsRemoved() throws {
        let store = try SeaweedStore(self, bucket: "damaged")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        let blob = try pushLayer(up, "team/app", size: 2_000_000)
        let key = "blobs/sha256/\(blob.dropFirst(7))"
        let dir = TempDir(self, "damaged")
        let wrong = dir.file("wrong")
        FileManager.default.createFile(atPath: wrong, contents: Data(repeating: 7, count: 2_000_000))
        XCTAssertEqual(try store.s3(["-X", "PUT", "--data-binary", "@\(wrong)", "-o", "/dev/null", "-w", "%{http_code}", "\(store.endpoint)/damaged/\(key)"]).stdout, "200")

        let n = try node(up, store, bucket: "damaged")
        let first = try curl(["-o", dir.file("first"), "-w", "%{http_code}", "\(n.base)/v2/team/app/blobs/\(blob)"])
        let got = (try? FileManager.default.attributesOfItem(atPath: dir.file("first"))[.size] as? Int) ?? 0
        XCTAssertTrue(first.status != 0 || got < 2_000_000, "a body that does not match its digest reached the client whole")
        XCTAssertTrue(eventually("the damaged object is deleted") { store.headStatus("damaged", key) == "404" }, n.log.suffix(2000).description)
        XCTAssertEqual(up.blobGets(blob), 0)
        let (status, sum, _) = try pull(n, "team/app", blob, into: dir)
        XCTAssertEqual([status, sum], ["200", blob])
        XCTAssertEqual(up.blobGets(blob), 1)
        XCTAssertTrue(n.log.contains("object store held bytes that do not match their digest"), n.log)
    }

    func testAPinMadeOnOneNodeHoldsOnEveryNodeAndAnUnpinAnywhereReleasesIt() throws {
        let store = try SeaweedStore(self, bucket: "pins")
        defer { store.stop() }
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1, layerSize: 100_000)
        let config = "admins = alice\n[registry \"up.test\"]\nurl = \(up.url)\n\(store.storageSection(bucket: "pins"))"
        let a = try startWithUsers(self, config).0, b = try startWithUsers(self, config).0
        let alice = ["-u", "alice:pw-a"]
        for node in [a, b] {
            let r = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "alice:pw-a",
                                    "docker://127.0.0.1:\(node.port)/up.test/team/app:v1", "dir:\(node.dir.file("pulled"))"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(eventually("cached on \(node.port)") { fullyCached(node.base, alice, source: "up.test", name: "team/app", tag: "v1") })
        }
        func consolePins(_ node: AnchorageServer) -> [String] {
            listDirectory(node.dir.file("cache/pins")).filter { $0.hasPrefix("console-") && !$0.contains(".tmp-") }
        }
        let pin = try curl(["-s"] + alice + ["-X", "POST", "\(a.base)/api/pins?kind=cached&source=up.test&name=team/app&ref=v1"]).stdout
        XCTAssertTrue(pin.contains("\"pinned\":true"), pin)
        XCTAssertEqual(consolePins(a).count, 1)
        // B takes the pin from the bucket: the same file, the same digests held.
        XCTAssertTrue(eventually("B holds the pin") { consolePins(b) == consolePins(a) }, "\(consolePins(b))\n\(b.log.suffix(2000))")
        let key = try XCTUnwrap(consolePins(a).first)
        XCTAssertEqual(try String(contentsOfFile: b.dir.file("cache/pins/\(key)"), encoding: .utf8),
                       try String(contentsOfFile: a.dir.file("cache/pins/\(key)"), encoding: .utf8))
        // Unpinned through B: A lets go too.
        let unpin = try curl(["-s"] + alice + ["-X", "DELETE", "\(b.base)/api/pins?kind=cached&source=up.test&name=team/app&ref=v1"]).stdout
        XCTAssertTrue(unpin.contains("\"pinned\":false"), unpin)
        XCTAssertTrue(eventually("A lets go") { consolePins(a).isEmpty }, "\(consolePins(a))")
        XCTAssertEqual(store.headStatus("pins", "pins/\(key)"), "404")
    }
}
