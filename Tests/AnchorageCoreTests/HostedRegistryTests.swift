import Foundation
import XCTest
@testable import AnchorageCore

/// Hosted namespaces: pushes from real clients, the push protocol against
/// the Docker registry as the oracle, write access, collection, retention,
/// immutability, quotas and crashes.
final class HostedRegistryTests: XCTestCase {
    private func hostedServer(_ keys: String = "", dir: TempDir? = nil) throws -> (AnchorageServer, TempDir) {
        try startHostedServer(self, keys, dir: dir)
    }

    private func layoutBlobs(_ layout: String) throws -> [String: String] {
        let dir = "\(layout)/blobs/sha256"
        var out: [String: String] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) { out[f] = try sha256File("\(dir)/\(f)") }
        return out
    }

    func testSkopeoPushesAndPullsBackByteIdenticalImagesAndIndexes() throws {
        let (m, dir) = try hostedServer()
        let single = dir.file("single"), multi = dir.file("multi")
        try makeImageLayout(single, tag: "v1", layers: 3, layerSize: 700_000, seed: "s")
        try makeImageLayout(multi, tag: "v2", layers: 2, layerSize: 100_000, seed: "m", multiarch: true)
        let host = "127.0.0.1:\(m.port)"
        let push = try runCommand(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "alice:pw-a", "oci:\(single):v1", "docker://\(host)/local/team/app:v1"], timeout: 120)
        XCTAssertEqual(push.status, 0, push.stderr)
        let pushAll = try runCommand(["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false", "--dest-creds", "alice:pw-a", "oci:\(multi):v2", "docker://\(host)/local/team/multi:v2"], timeout: 120)
        XCTAssertEqual(pushAll.status, 0, pushAll.stderr)

        for (repo, tag, source) in [("team/app", "v1", single), ("team/multi", "v2", multi)] {
            let back = dir.file("back-\(tag)")
            var args = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b"]
            if tag == "v2" { args.append("--all") }
            let pulled = try runCommand(args + ["docker://\(host)/local/\(repo):\(tag)", "oci:\(back):\(tag)"], timeout: 120)
            XCTAssertEqual(pulled.status, 0, pulled.stderr)
            XCTAssertEqual(try layoutBlobs(back), try layoutBlobs(source), "every blob and manifest of \(repo) comes back byte-identical")
        }
        XCTAssertEqual(m.accessLines("/v2/local/").filter { $0.contains("cache=MISS") }.count, 0, "hosted content never goes upstream")

        let calls = RegistryCalls(base: m.base, credentials: "bob:pw-b", dir: dir)
        XCTAssertEqual(try calls.call("GET", "/v2/_catalog").text, "{\"repositories\":[\"local/team/app\",\"local/team/multi\"]}\n")
        let page = try calls.call("GET", "/v2/_catalog?n=1")
        XCTAssertEqual(page.text, "{\"repositories\":[\"local/team/app\"]}\n")
        XCTAssertEqual(page.header("Link"), "</v2/_catalog?n=1&last=local/team/app>; rel=\"next\"")
        XCTAssertEqual(try calls.call("GET", "/v2/local/team/app/tags/list").text, "{\"name\":\"local/team/app\",\"tags\":[\"v1\"]}\n")

        // Write access: bob may read but not push; nobody pushes anonymously.
        let bob = try runCommand(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "bob:pw-b", "oci:\(single):v1", "docker://\(host)/local/team/app:bob"], timeout: 120)
        XCTAssertNotEqual(bob.status, 0)
        XCTAssertTrue(bob.stderr.contains("denied"), bob.stderr)
        let anonymous = try RegistryCalls(base: m.base, credentials: nil, dir: dir).call("POST", "/v2/local/team/app/blobs/uploads/")
        XCTAssertEqual(anonymous.status, 401)
        XCTAssertEqual(anonymous.header("WWW-Authenticate"), "Basic realm=\"anchorage\"")
        let denied = try calls.call("DELETE", "/v2/local/team/app/manifests/v1")
        XCTAssertEqual(denied.status, 403)
        XCTAssertTrue(denied.text.contains("\"DENIED\""), denied.text)
        XCTAssertEqual(try calls.call("GET", "/v2/local/team/app/tags/list").text, "{\"name\":\"local/team/app\",\"tags\":[\"v1\"]}\n", "nothing changed")
    }

    /// The same push sequence against the Docker registry and Anchorage:
    /// every status, and the headers clients rely on, agree. (Where the
    /// registry 2.8 departs from the spec — a monolithic `POST ?digest=`,
    /// a `PATCH` with a gap — Anchorage is held to the spec instead.)
    func testPushProtocolMatchesTheDockerRegistry() throws {
        let registry = try UpstreamRegistry(self)
        let (m, dir) = try hostedServer()
        func run(_ calls: RegistryCalls) throws -> [String] {
            var log: [String] = []
            func note(_ step: String, _ r: Exchange, _ headers: [String] = [], code: Bool = true) {
                let present = headers.map { "\($0)=\(r.header($0) != nil)" }.joined(separator: " ")
                let error = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
                    .flatMap { ($0["errors"] as? [[String: Any]])?.first?["code"] as? String } ?? "-"
                log.append("\(step): \(r.status) \(code ? error : "") \(present)")
            }
            let repo = "local/oracle/app"
            let chunk1 = fixtureBytes(100_000, seed: 1), chunk2 = fixtureBytes(50_000, seed: 2)
            let whole = chunk1 + chunk2
            let start = try calls.call("POST", "/v2/\(repo)/blobs/uploads/")
            note("start", start, ["Location", "Docker-Upload-UUID", "Range"])
            let location = try XCTUnwrap(start.header("Location"))
            let p1 = try calls.call("PATCH", location, body: chunk1, headers: ["Content-Range": "0-99999"])
            note("patch 1", p1, ["Location", "Range"])
            XCTAssertEqual(p1.header("Range"), "0-99999")
            let next = try XCTUnwrap(p1.header("Location"))
            let status = try calls.call("GET", next)
            note("status", status, ["Range", "Docker-Upload-UUID"])
            XCTAssertEqual(status.header("Range"), "0-99999")
            let sep = next.contains("?") ? "&" : "?"
            note("put wrong digest", try calls.call("PUT", "\(next)\(sep)digest=\(digestOf([1, 2, 3]))", body: chunk2))
            // A failed final PUT ends the upload in both (the registry says
            // BLOB_UPLOAD_INVALID, the spec and Anchorage BLOB_UPLOAD_UNKNOWN).
            note("put after failure", try calls.call("PUT", "\(next)\(sep)digest=\(digestOf(whole))", body: chunk2), code: false)

            let again = try XCTUnwrap(try calls.call("POST", "/v2/\(repo)/blobs/uploads/").header("Location"))
            let p = try calls.call("PATCH", again, body: chunk1)
            note("streamed patch", p, ["Range"])
            let fin = try XCTUnwrap(p.header("Location"))
            let put = try calls.call("PUT", "\(fin)\(fin.contains("?") ? "&" : "?")digest=\(digestOf(whole))", body: chunk2)
            note("put with last chunk", put, ["Location", "Docker-Content-Digest"])
            XCTAssertEqual(put.header("Docker-Content-Digest"), digestOf(whole))
            let head = try calls.call("HEAD", "/v2/\(repo)/blobs/\(digestOf(whole))")
            note("head blob", head, ["Docker-Content-Digest"])
            XCTAssertEqual(head.header("Content-Length"), "150000")
            XCTAssertEqual(try calls.call("GET", "/v2/\(repo)/blobs/\(digestOf(whole))").body, whole)

            let single = try XCTUnwrap(try calls.call("POST", "/v2/\(repo)/blobs/uploads/").header("Location"))
            note("one put", try calls.call("PUT", "\(single)\(single.contains("?") ? "&" : "?")digest=\(digestOf(chunk2))", body: chunk2), ["Location", "Docker-Content-Digest"])
            note("mount", try calls.call("POST", "/v2/local/other/app/blobs/uploads/?mount=\(digestOf(whole))&from=\(repo)"), ["Location", "Docker-Content-Digest"])
            note("mount unknown", try calls.call("POST", "/v2/local/other/app/blobs/uploads/?mount=\(digestOf([9]))&from=\(repo)"), ["Location", "Docker-Upload-UUID"])
            let cancel = try XCTUnwrap(try calls.call("POST", "/v2/\(repo)/blobs/uploads/").header("Location"))
            note("cancel", try calls.call("DELETE", cancel))
            note("status after cancel", try calls.call("GET", cancel))

            let config = Array("{\"architecture\":\"amd64\",\"os\":\"linux\"}".utf8)
            let missing = try calls.pushImage(repo, tag: "broken", config: config, layers: [])
            XCTAssertEqual(missing.status, 201)
            let bad = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"\(digestOf([7, 7]))\",\"size\":2},\"layers\":[]}"
            note("manifest with a missing blob", try calls.call("PUT", "/v2/\(repo)/manifests/bad", body: Array(bad.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]))
            let good = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"\(digestOf(chunk2))\",\"size\":50000},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"\(digestOf(whole))\",\"size\":150000}]}"
            let stored = try calls.call("PUT", "/v2/\(repo)/manifests/v1", body: Array(good.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"])
            note("manifest", stored, ["Location", "Docker-Content-Digest"])
            XCTAssertEqual(stored.header("Docker-Content-Digest"), digestOf(Array(good.utf8)))
            let got = try calls.call("GET", "/v2/\(repo)/manifests/v1", headers: ["Accept": "application/vnd.oci.image.manifest.v1+json"])
            note("get manifest", got, ["Docker-Content-Digest"])
            XCTAssertEqual(got.text, good)
            XCTAssertEqual(got.header("Content-Type"), "application/vnd.oci.image.manifest.v1+json")
            note("manifest by wrong digest", try calls.call("PUT", "/v2/\(repo)/manifests/\(digestOf([1]))", body: Array(good.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]))
            note("delete manifest", try calls.call("DELETE", "/v2/\(repo)/manifests/\(digestOf(Array(good.utf8)))"))
            note("get deleted", try calls.call("GET", "/v2/\(repo)/manifests/v1"))
            note("delete blob", try calls.call("DELETE", "/v2/\(repo)/blobs/\(digestOf(chunk2))"))
            note("head deleted blob", try calls.call("HEAD", "/v2/\(repo)/blobs/\(digestOf(chunk2))"))
            return log
        }
        let oracle = try run(RegistryCalls(base: registry.url, credentials: nil, dir: dir))
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        XCTAssertEqual(try run(calls), oracle)

        // The spec where the registry 2.8 does not follow it.
        let bytes = fixtureBytes(3000, seed: 3)
        let mono = try calls.call("POST", "/v2/local/spec/app/blobs/uploads/?digest=\(digestOf(bytes))", body: bytes)
        XCTAssertEqual(mono.status, 201, "a monolithic POST with a digest stores the blob")
        XCTAssertEqual(mono.header("Location"), "/v2/local/spec/app/blobs/\(digestOf(bytes))")
        XCTAssertEqual(try calls.call("GET", "/v2/local/spec/app/blobs/\(digestOf(bytes))").body, bytes)
        let location = try XCTUnwrap(try calls.call("POST", "/v2/local/spec/app/blobs/uploads/").header("Location"))
        XCTAssertEqual(try calls.call("PATCH", location, body: Array(bytes[..<1000]), headers: ["Content-Range": "0-999"]).status, 202)
        let gap = try calls.call("PATCH", location, body: Array(bytes[1500...]), headers: ["Content-Range": "1500-2999"])
        XCTAssertEqual(gap.status, 416, "a chunk that leaves a gap")
        XCTAssertEqual(gap.header("Range"), "0-999", "with where the upload ends")
        XCTAssertEqual(try calls.call("PATCH", location, body: Array(bytes[1000...]), headers: ["Content-Range": "1000-2999"]).status, 202)
        XCTAssertEqual(try calls.call("PUT", "\(location)?digest=\(digestOf(bytes))").status, 201, "the final PUT without a body")
        let patchManifest = try calls.call("PATCH", "/v2/local/spec/app/manifests/v1", body: [1])
        XCTAssertEqual(patchManifest.status, 405)
        XCTAssertEqual(patchManifest.header("Allow"), "GET, HEAD, PUT, DELETE")
        let unknown = try calls.call("GET", "/v2/local/spec/app/blobs/uploads/0a1b2c3d-0000-4000-8000-000000000000")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertTrue(unknown.text.contains("BLOB_UPLOAD_UNKNOWN"), unknown.text)
    }

    func testCollectionKeepsSharedLayersAndUploadsInProgress() throws {
        let (m, dir) = try hostedServer("grace_period = 0s\n")
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let shared = fixtureBytes(30_000, seed: 10), onlyOne = fixtureBytes(40_000, seed: 11), onlyTwo = fixtureBytes(50_000, seed: 12)
        let c1 = Array("{\"os\":\"linux\",\"n\":1}".utf8), c2 = Array("{\"os\":\"linux\",\"n\":2}".utf8)
        let one = try calls.pushImage("local/a/one", tag: "v1", config: c1, layers: [shared, onlyOne])
        let two = try calls.pushImage("local/a/two", tag: "v1", config: c2, layers: [shared, onlyTwo])
        XCTAssertEqual([one.status, two.status], [201, 201])
        // An upload under way while the collector runs.
        let location = try XCTUnwrap(try calls.call("POST", "/v2/local/a/three/blobs/uploads/").header("Location"))
        let pending = fixtureBytes(20_000, seed: 13)
        XCTAssertEqual(try calls.call("PATCH", location, body: Array(pending[..<10_000])).status, 202)

        XCTAssertEqual(try calls.call("DELETE", "/v2/local/a/one/manifests/\(one.digest)").status, 202)
        let gc = { (dry: Bool) throws -> String in
            let r = try runCommand([try anchorageBinary(), "gc", "--hosted", "--config", dir.file("mirror.conf")] + (dry ? ["--dry-run"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout
        }
        // The deleted image's own blobs go: its manifest, config and only layer.
        let preview = try gc(true)
        XCTAssertTrue(preview.contains("would remove 3 blobs"), preview)
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/a/one/blobs/\(digestOf(onlyOne))").status, 200, "a dry run changes nothing")
        let done = try gc(false)
        XCTAssertTrue(done.contains("removed 3 blobs"), done)
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/a/one/blobs/\(digestOf(onlyOne))").status, 404)
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/a/one/blobs/\(digestOf(shared))").status, 200, "a layer the other image uses stays")
        for d in [digestOf(shared), digestOf(onlyTwo), digestOf(c2)] {
            XCTAssertEqual(try calls.call("GET", "/v2/local/a/two/blobs/\(d)").status, 200)
        }
        XCTAssertEqual(try calls.call("GET", "/v2/local/a/two/manifests/v1").status, 200)
        // The interrupted upload finishes after the collection.
        let finished = try calls.call("PUT", "\(location)?digest=\(digestOf(pending))", body: Array(pending[10_000...]))
        XCTAssertEqual(finished.status, 201, finished.text)
        XCTAssertEqual(try calls.call("GET", "/v2/local/a/three/blobs/\(digestOf(pending))").body, pending)
        XCTAssertEqual(try calls.pushImage("local/a/three", tag: "v1", config: c1, layers: [pending]).status, 201)
        let again = try gc(false)
        XCTAssertTrue(again.contains("removed 0 blobs"), "a second run finds nothing more: \(again)")
    }

    func testRetentionImmutabilityAndQuota() throws {
        let (m, dir) = try hostedServer("immutable_tags = v*\nkeep_tags = 2\nkeep_tags_matching = build-*\ndelete_untagged_after = 0s\nmax_size = 300KiB\ngrace_period = 0s\n")
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let layer = fixtureBytes(10_000, seed: 20)
        func image(_ n: Int, tag: String) throws -> (digest: String, status: Int) {
            try calls.pushImage("local/r/app", tag: tag, config: Array("{\"n\":\(n)}".utf8), layers: [layer])
        }
        XCTAssertEqual(try image(1, tag: "v1").status, 201)
        XCTAssertEqual(try image(1, tag: "v1").status, 201, "the same manifest again is no change")
        let moved = try calls.call("PUT", "/v2/local/r/app/manifests/v1", body: Array("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"\(try calls.pushBlob("local/r/app", Array("{\"n\":2}".utf8)))\",\"size\":7},\"layers\":[]}".utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"])
        XCTAssertEqual(moved.status, 403)
        XCTAssertTrue(moved.text.contains("tag is immutable"), moved.text)
        XCTAssertEqual(try calls.call("DELETE", "/v2/local/r/app/manifests/v1").status, 403)
        XCTAssertEqual(try image(3, tag: "latest").status, 201)
        XCTAssertEqual(try image(4, tag: "latest").status, 201, "other tags move freely")

        // Retention: the newest two build-* tags stay, v1 and latest are not counted.
        for n in 1...4 {
            XCTAssertEqual(try image(10 + n, tag: "build-\(n)").status, 201)
        }
        let preview = try runCommand([try anchorageBinary(), "gc", "--hosted", "--dry-run", "--config", dir.file("mirror.conf")]).stdout
        let r = try runCommand([try anchorageBinary(), "gc", "--hosted", "--config", dir.file("mirror.conf")])
        XCTAssertTrue(r.stdout.contains("deleted tag local/r/app:build-1") && r.stdout.contains("deleted tag local/r/app:build-2"), r.stdout)
        // Untagged after that: the images build-1 and build-2 named, and the
        // one latest named before it moved, each with its config blob; and
        // the config of the manifest refused as a move of v1.
        XCTAssertTrue(r.stdout.contains("removed 7 blobs") && r.stdout.contains(", 3 manifests, 2 tags"), r.stdout)
        XCTAssertEqual(preview.split(separator: "\n").last.map(String.init), r.stdout.split(separator: "\n").last.map { $0.replacingOccurrences(of: "removed", with: "would remove") },
                       "the dry run foresaw exactly this")
        XCTAssertEqual(try calls.call("GET", "/v2/local/r/app/tags/list").text, "{\"name\":\"local/r/app\",\"tags\":[\"build-3\",\"build-4\",\"latest\",\"v1\"]}\n")

        // Quota: a blob that would pass max_size is refused before any byte is stored.
        let big = fixtureBytes(400_000, seed: 21)
        let refused = try calls.call("POST", "/v2/local/r/app/blobs/uploads/?digest=\(digestOf(big))", body: big)
        XCTAssertEqual(refused.status, 403)
        XCTAssertTrue(refused.text.contains("\"DENIED\"") && refused.text.contains("max_size 300KiB"), refused.text)
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/r/app/blobs/\(digestOf(big))").status, 404)
        let tmp = dir.file("cache/hosted/tmp")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { !$0.hasPrefix(".") }, [], "nothing half-written")
        // Streamed without a length: cut off at the quota.
        let location = try XCTUnwrap(try calls.call("POST", "/v2/local/r/app/blobs/uploads/").header("Location"))
        let streamed = try calls.call("PATCH", location, body: big, headers: ["Transfer-Encoding": "chunked"])
        XCTAssertEqual(streamed.status, 403, streamed.text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { !$0.hasPrefix(".") }, [])
    }

    func testAKilledPushLeavesNoTraceAndTheDaemonRecovers() throws {
        let (m, dir) = try hostedServer()
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let kept = try calls.pushImage("local/k/app", tag: "v1", config: Array("{}".utf8), layers: [fixtureBytes(5000, seed: 30)])
        XCTAssertEqual(kept.status, 201)
        let location = try XCTUnwrap(try calls.call("POST", "/v2/local/k/app/blobs/uploads/").header("Location"))
        XCTAssertEqual(try calls.call("PATCH", location, body: fixtureBytes(300_000, seed: 31)).status, 202)
        let tmp = dir.file("cache/hosted/tmp")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).count, 1, "the upload's temp file")
        m.proc.kill9()
        let (again, _) = try hostedServer(dir: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { !$0.hasPrefix(".") }, [], "the interrupted upload is purged at start-up")
        let after = RegistryCalls(base: again.base, credentials: "alice:pw-a", dir: dir)
        XCTAssertEqual(try after.call("GET", location.replacingOccurrences(of: m.base, with: "")).status, 404)
        XCTAssertEqual(try after.call("GET", "/v2/local/k/app/manifests/v1").status, 200, "what was pushed before survives")
        let verify = try runCommand([try anchorageBinary(), "verify", "--config", dir.file("mirror.conf")])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("hosted: checked 3 blobs") && verify.stdout.contains("0 missing references"), verify.stdout)
        // A hosted blob lost behind the store's back is reported.
        let layer = dir.file("cache/hosted/blobs/sha256/\(digestOf(fixtureBytes(5000, seed: 30)).dropFirst(7).prefix(2))/\(digestOf(fixtureBytes(5000, seed: 30)).dropFirst(7))")
        XCTAssertEqual(unlink(layer), 0)
        let lost = try runCommand([try anchorageBinary(), "verify", "--config", dir.file("mirror.conf")])
        XCTAssertEqual(lost.status, 1)
        XCTAssertTrue(lost.stdout.contains("MISSING local/k/app@\(kept.digest): references \(digestOf(fixtureBytes(5000, seed: 30)))"), lost.stdout)
    }

    /// A collector killed wherever it is leaves every referenced blob and a
    /// store the next run finishes; the daemon serves on throughout.
    func testACollectionKilledMidwayLosesNothingReferenced() throws {
        let (m, dir) = try hostedServer("grace_period = 0s\n")
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let layer = fixtureBytes(100_000, seed: 70)
        let kept = try calls.pushImage("local/g/app", tag: "v1", config: Array("{\"kept\":1}".utf8), layers: [layer])
        XCTAssertEqual(kept.status, 201)
        for i in 0..<150 { try calls.pushBlob("local/g/junk", fixtureBytes(2000, seed: UInt64(100 + i))) }
        let gc = try BackgroundProcess(self, [try anchorageBinary(), "gc", "--hosted", "--config", dir.file("mirror.conf")], logPath: dir.file("gc.log"))
        usleep(30_000)   // wherever the kill lands (even before or after the sweep), all below must hold
        gc.kill9()
        let verify = try runCommand([try anchorageBinary(), "verify", "--config", dir.file("mirror.conf")])
        XCTAssertEqual(verify.status, 0, verify.stdout)
        XCTAssertTrue(verify.stdout.contains("0 missing references"), verify.stdout)
        XCTAssertEqual(try calls.call("GET", "/v2/local/g/app/blobs/\(digestOf(layer))").body, layer)
        let again = try runCommand([try anchorageBinary(), "gc", "--hosted", "--config", dir.file("mirror.conf")])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try runCommand([try anchorageBinary(), "gc", "--hosted", "--dry-run", "--config", dir.file("mirror.conf")]).stdout,
                       "would remove 0 blobs (0B), 0 manifests, 0 tags\n", "the second run finished the job")
        XCTAssertEqual(try calls.call("GET", "/v2/local/g/app/manifests/v1").status, 200)
        XCTAssertEqual(try calls.call("GET", "/v2/local/g/app/blobs/\(digestOf(layer))").body, layer)
    }

    func testConcurrentPushesOfOneLayerToTwoRepositories() throws {
        let (m, dir) = try hostedServer()
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let layer = fixtureBytes(2_000_000, seed: 40)
        let results = ManagedStatuses()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let r = try? calls.call("POST", "/v2/local/c/app\(i % 2)/blobs/uploads/?digest=\(digestOf(layer))", body: layer)
            results.add(r?.status ?? 0)
        }
        XCTAssertEqual(results.all.sorted(), [201, 201, 201, 201])
        for i in 0..<2 {
            XCTAssertEqual(try calls.call("GET", "/v2/local/c/app\(i)/blobs/\(digestOf(layer))").body, layer)
        }
        let blobs = dir.file("cache/hosted/blobs/sha256/\(digestOf(layer).dropFirst(7).prefix(2))")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: blobs).count, 1, "stored once")
    }

    func testHostedConfigurationErrors() throws {
        let dir = TempDir(self)
        let htpasswd = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", htpasswd, "alice", "pw"]).status, 0)
        func check(_ text: String) throws -> RunResult {
            try runCommand([try anchorageBinary(), "check-config", "--config", dir.write("c.conf", text)])
        }
        let both = try check("[registry \"local\"]\nurl = http://127.0.0.1:1\n[hosted \"local\"]\n")
        XCTAssertEqual(both.status, 1)
        XCTAssertTrue(both.stderr.contains("c.conf:3:") && both.stderr.contains("both a hosted namespace and a [registry]"), both.stderr)
        let noAuth = try check("[hosted \"local\"]\nwriters = alice\n")
        XCTAssertTrue(noAuth.stderr.contains("c.conf:2:") && noAuth.stderr.contains("needs [auth] htpasswd"), noAuth.stderr)
        let unknown = try check("[auth]\nhtpasswd = \(htpasswd)\n[hosted \"local\"]\nwriters = alice, mallory\n")
        XCTAssertTrue(unknown.stderr.contains("c.conf:4:") && unknown.stderr.contains("mallory"), unknown.stderr)
        let badName = try check("[hosted \"Local/x\"]\n")
        XCTAssertTrue(badName.stderr.contains("invalid hosted namespace"), badName.stderr)
        XCTAssertEqual(try check("[auth]\nhtpasswd = \(htpasswd)\n[hosted \"local\"]\nwriters = *\nmax_size = 1GiB\n").status, 0)
    }

    /// Harbor's pull replication: a sync rule copies matched upstream images
    /// into a hosted repository, digests unchanged; they stay when the
    /// upstream deletes them and when the cache evicts its copy.
    func testSyncCopiesUpstreamImagesIntoAHostedRepository() throws {
        let up = try UpstreamRegistry(self)
        var digests: [String: String] = [:]
        for v in ["1.25.0", "1.26.1", "1.27.0", "1.28.0"] { digests[v] = try up.push(name: "library/nginx", tag: v, layers: 1, layerSize: 200_000, seed: v) }
        let index = try up.push(name: "team/multi", tag: "2.0", layers: 1, layerSize: 50_000, multiarch: true)
        let (m, dir) = try hostedServer("[registry \"up.test\"]\nurl = \(up.url)\ndefault = true\n[sync]\nimage = up.test/library/nginx:>=1.26 <1.28 -> local/base/nginx\nimage = up.test/team/multi:2.0 -> local/base/multi\n")
        let r = try runCommand([try anchorageBinary(), "sync", "--config", dir.file("mirror.conf")], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let calls = RegistryCalls(base: m.base, credentials: "bob:pw-b", dir: dir)
        XCTAssertEqual(try calls.call("GET", "/v2/local/base/nginx/tags/list").text, "{\"name\":\"local/base/nginx\",\"tags\":[\"1.26.1\",\"1.27.0\"]}\n")
        // The upstream forgets them, and the cache lets its copies go.
        for v in ["1.26.1", "1.27.0"] {
            XCTAssertEqual(try RegistryCalls(base: up.url, credentials: nil, dir: dir).call("DELETE", "/v2/library/nginx/manifests/\(digests[v] ?? "")").status, 202)
        }
        up.stop()
        XCTAssertEqual(try runCommand([try anchorageBinary(), "gc", "--to", "0", "--config", dir.file("mirror.conf")]).status, 0)
        let host = "127.0.0.1:\(m.port)"
        for (repo, tag, digest) in [("nginx", "1.27.0", digests["1.27.0"] ?? ""), ("multi", "2.0", index)] {
            let inspect = try runCommand(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "bob:pw-b", "docker://\(host)/local/base/\(repo):\(tag)"], timeout: 60)
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            XCTAssertEqual(digestOf(Array(inspect.stdout.utf8)), digest, "byte-exact manifest of \(repo):\(tag)")
            let pulled = try runCommand(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(host)/local/base/\(repo):\(tag)", "dir:\(dir.file("pulled-\(repo)"))"], timeout: 120)
            XCTAssertEqual(pulled.status, 0, "every blob is there and verifies: \(pulled.stderr)")
        }
    }

    func testAClientThatDisconnectsMidUploadCanResume() throws {
        let (m, dir) = try hostedServer()
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let blob = fixtureBytes(300_000, seed: 50)
        let location = try XCTUnwrap(try calls.call("POST", "/v2/local/d/app/blobs/uploads/").header("Location"))
        let raw = try RawClient(port: m.port)
        let auth = Data("alice:pw-a".utf8).base64EncodedString()
        raw.send("PATCH \(location) HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Length: 300000\r\n\r\n")
        raw.send(Array(blob[..<120_000]))
        // The client goes away with 180,000 bytes unsent.
        shutdown(raw.fd, Int32(SHUT_RDWR))
        var status: Exchange?
        for _ in 0..<200 {
            let s = try calls.call("GET", location)
            if s.status == 204 { status = s; break }
            usleep(50_000)   // the server has not yet seen the close
        }
        let range = try XCTUnwrap(status?.header("Range"), "the upload survives its client")
        let end = try XCTUnwrap(Int(range.split(separator: "-").last ?? ""))
        XCTAssertLessThanOrEqual(end + 1, 120_000)
        let rest = try calls.call("PATCH", location, body: Array(blob[(end + 1)...]), headers: ["Content-Range": "\(end + 1)-299999"])
        XCTAssertEqual(rest.status, 202, rest.text)
        XCTAssertEqual(try calls.call("PUT", "\(location)?digest=\(digestOf(blob))").status, 201)
        XCTAssertEqual(try calls.call("GET", "/v2/local/d/app/blobs/\(digestOf(blob))").body, blob)
    }

    func testAFullDiskFailsAnUploadCleanly() throws {
        let dir = TempDir(self, "hostedfull")
        let cache = dir.file("cache")
        try mountSmallDisk(self, at: cache, size: "8m")
        let (m, _) = try hostedServer(dir: dir)
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: TempDir(self))
        let kept = try calls.pushImage("local/f/app", tag: "v1", config: Array("{}".utf8), layers: [fixtureBytes(1_000_000, seed: 60)])
        XCTAssertEqual(kept.status, 201)
        let huge = fixtureBytes(12_000_000, seed: 61)
        let r = try calls.call("POST", "/v2/local/f/app/blobs/uploads/?digest=\(digestOf(huge))", body: huge)
        XCTAssertEqual(r.status, 507, r.text)
        XCTAssertTrue(r.text.contains("No space left on device"), r.text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(cache)/hosted/tmp"), [], "nothing half-written stays")
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/f/app/blobs/\(digestOf(huge))").status, 404)
        XCTAssertEqual(try calls.call("GET", "/v2/local/f/app/manifests/v1").status, 200, "what was stored is intact")
        let small = fixtureBytes(500_000, seed: 62)
        XCTAssertEqual(try calls.call("POST", "/v2/local/f/app/blobs/uploads/?digest=\(digestOf(small))", body: small).status, 201, "space that is left is used")
        let verify = try runCommand([try anchorageBinary(), "verify", "--config", dir.file("mirror.conf")])
        XCTAssertEqual(verify.status, 0, verify.stdout)
    }

    func testReferrersOfAHostedManifest() throws {
        let (m, dir) = try hostedServer()
        let calls = RegistryCalls(base: m.base, credentials: "alice:pw-a", dir: dir)
        let image = try calls.pushImage("local/r/app", tag: "v1", config: Array("{\"img\":1}".utf8), layers: [fixtureBytes(1000, seed: 80)])
        let imageSize = try calls.call("GET", "/v2/local/r/app/manifests/v1").body.count
        // A signature whose subject is the image, pushed by digest as cosign and oras do.
        let sigConfig = Array("{}".utf8)
        let c = try calls.pushBlob("local/r/app", sigConfig)
        let sig = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"\(c)\",\"size\":2},\"layers\":[],\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"\(image.digest)\",\"size\":\(imageSize)},\"annotations\":{\"kind\":\"signature\"}}"
        let put = try calls.call("PUT", "/v2/local/r/app/manifests/\(digestOf(Array(sig.utf8)))", body: Array(sig.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"])
        XCTAssertEqual(put.status, 201, put.text)
        XCTAssertEqual(put.header("OCI-Subject"), image.digest)
        let all = try calls.call("GET", "/v2/local/r/app/referrers/\(image.digest)")
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(all.body)) as? [String: Any])
        let entries = try XCTUnwrap(index["manifests"] as? [[String: Any]])
        XCTAssertEqual(entries.count, 1)
        XCTAssertEqual(entries.first?["digest"] as? String, digestOf(Array(sig.utf8)))
        XCTAssertEqual(entries.first?["artifactType"] as? String, "application/vnd.dev.cosign.simplesigning.v1+json")
        XCTAssertEqual((entries.first?["annotations"] as? [String: String])?["kind"], "signature")
        let filtered = try calls.call("GET", "/v2/local/r/app/referrers/\(image.digest)?artifactType=application/vnd.example.sbom")
        XCTAssertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")
        XCTAssertEqual(((try JSONSerialization.jsonObject(with: Data(filtered.body)) as? [String: Any])?["manifests"] as? [Any])?.count, 0)
        // A subject that does not exist (yet) is accepted, as the spec asks.
        let orphan = sig.replacingOccurrences(of: image.digest, with: digestOf([42]))
        XCTAssertEqual(try calls.call("PUT", "/v2/local/r/app/manifests/\(digestOf(Array(orphan.utf8)))", body: Array(orphan.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]).status, 201)
        // Deleting the signature takes it out of the listing.
        XCTAssertEqual(try calls.call("DELETE", "/v2/local/r/app/manifests/\(digestOf(Array(sig.utf8)))").status, 202)
        let after = try calls.call("GET", "/v2/local/r/app/referrers/\(image.digest)")
        XCTAssertEqual(((try JSONSerialization.jsonObject(with: Data(after.body)) as? [String: Any])?["manifests"] as? [Any])?.count, 0)
    }

    func testTagPatterns() {
        XCTAssertTrue(TagPattern("v*").matches("v1.2"))
        XCTAssertFalse(TagPattern("v*").matches("latest"))
        XCTAssertTrue(TagPattern("*").matches(""))
        XCTAssertTrue(TagPattern("build-??").matches("build-12"))
        XCTAssertFalse(TagPattern("build-??").matches("build-123"))
        XCTAssertTrue(TagPattern("*-rc*").matches("1.0-rc2"))
    }
}

/// Statuses gathered from concurrent calls.
final class ManagedStatuses: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func add(_ v: Int) { lock.lock(); values.append(v); lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return values }
}
