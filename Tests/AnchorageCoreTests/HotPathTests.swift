import XCTest
@testable import AnchorageCore

/// The byte-level helpers and grammars on the request hot path, checked
/// against the behaviour they replaced.
final class HotPathTests: XCTestCase {
    func testByteSearch() {
        let p = "/v2/a/manifests/b/manifests/c"
        let r = p.lastRange(ofBytes: "/manifests/")
        XCTAssertEqual(r.map { String(p[..<$0.lowerBound]) }, "/v2/a/manifests/b")
        XCTAssertEqual(r.map { String(p[$0.upperBound...]) }, "c")
        XCTAssertNil(p.lastRange(ofBytes: "/blobs/"))
        XCTAssertTrue("/v2/x/tags/list".hasSuffixBytes("/tags/list"))
        XCTAssertFalse("/v2/x/tags/list/".hasSuffixBytes("/tags/list"))
        XCTAssertFalse("list".hasSuffixBytes("/tags/list"))
        XCTAssertTrue("keep-alive, close".containsBytes("close"))
        XCTAssertFalse("".containsBytes("close"))
        // On a substring, indices stay those of the base string.
        let sub = p.dropFirst(4)
        XCTAssertEqual(sub.lastRange(ofBytes: "/manifests/").map { String(sub[..<$0.lowerBound]) }, "a/manifests/b")
        // Non-ASCII text is searched byte-wise, without Unicode folding.
        XCTAssertNil("/v2/é/blobs".lastRange(ofBytes: "/e/"))
        XCTAssertNotNil("/v2/é/blobs/".lastRange(ofBytes: "/blobs/"))
    }

    /// The metrics' route classes and repositories, read on the path's bytes.
    func testRouteClassAndRepository() {
        let cases: [(String, RouteClass, String?)] = [
            ("/v2", .registryBase, nil), ("/v2/", .registryBase, nil),
            ("/v2/library/alpine/manifests/3.19", .registryManifest, "library/alpine"),
            ("/v2/a/blobs/sha256:ab", .registryBlob, "a"),
            ("/v2/a/manifests/x/blobs/y", .registryBlob, "a/manifests/x"),
            ("/v2/é/blobs/x", .registryBlob, "é"),
            ("/v2/x/tags/list", .registryTags, nil), ("/v2/x/other", .other, nil),
            ("/charts/r/index.yaml", .chartIndex, nil),
            ("/charts/r/nginx-1.2.3.tgz", .chartArchive, "charts/r/nginx"),
            ("/charts/r/nginx-1.2.3.tgz.prov", .chartProvenance, nil), ("/charts/r/x", .other, nil),
            ("/healthz", .health, nil), ("/readyz", .health, nil), ("/metrics", .metrics, nil),
            ("/", .status, nil), ("/api/status", .status, nil),
            ("/v3", .other, nil), ("/v", .other, nil), ("", .other, nil), ("/healthzz", .other, nil),
        ]
        for (path, route, repo) in cases {
            XCTAssertEqual(RouteClass.of(path), route, path)
            XCTAssertEqual(route.repository(path), repo, path)
        }
    }

    func testRepositoryNameGrammar() {
        for ok in ["a", "library/alpine", "a/b/c", "a.b", "a_b", "a__b", "a---b", "0", "x9/y-z.w"] {
            XCTAssertNotNil(RepositoryName(ok), ok)
            XCTAssertNotNil(RepositoryName(Substring("/" + ok).dropFirst()), ok)
        }
        for bad in ["", "A", "a//b", "/a", "a/", "a/.", "..", "a/../b", "a___b", "a..b", "-a", "a-", "a_", "a/_b", "a b", "a%2fb", "é",
                    String(repeating: "a", count: 256)] {
            XCTAssertNil(RepositoryName(bad), bad)
        }
    }

    func testDigestAndReference() {
        let hex = String(repeating: "ab", count: 32)
        XCTAssertEqual(Digest("sha256:" + hex)?.hex, hex)
        XCTAssertEqual(Digest("sha512:" + hex + hex)?.algorithm, .sha512)
        for bad in ["sha256:" + hex.uppercased(), "sha256:" + hex.dropLast(), "sha1:" + hex, "sha256" + hex, ":" + hex, "sha256:", "SHA256:" + hex] {
            XCTAssertNil(Digest(bad), bad)
        }
        XCTAssertEqual(Reference("sha256:" + hex), .digest(Digest("sha256:" + hex)!))
        XCTAssertEqual(Reference("v1.2_3-x"), .tag(Tag("v1.2_3-x")!))
        XCTAssertNil(Reference("sha256:zz"))
        XCTAssertNil(Reference(".hidden"))
    }

    func testHotBlobsVerifiesAndStaysWithinBudget() {
        let hot = HotBlobs(budget: 10_000)
        let a = [UInt8](repeating: 1, count: 4000), b = [UInt8](repeating: 2, count: 4000), c = [UInt8](repeating: 3, count: 4000)
        let da = Hasher.digest(a), db = Hasher.digest(b), dc = Hasher.digest(c)
        // Bytes that do not hash to the name are refused and not kept.
        XCTAssertFalse(hot.put(da, b, mediaType: "t"))
        XCTAssertNil(hot.get(da))
        XCTAssertTrue(hot.put(da, a, mediaType: "t"))
        XCTAssertTrue(hot.put(db, b, mediaType: "t"))
        XCTAssertEqual(hot.get(da)?.bytes, a)            // a is now the most recently used
        XCTAssertTrue(hot.put(dc, c, mediaType: "t"))    // over budget: b goes
        XCTAssertNil(hot.get(db))
        XCTAssertEqual(hot.get(da)?.bytes, a)
        XCTAssertEqual(hot.get(dc)?.mediaType, "t")
        XCTAssertEqual(hot.count, 2)
        // Too big for an entry: verified, but not kept.
        let big = [UInt8](repeating: 9, count: HotBlobs.maxEntryBytes + 1)
        XCTAssertTrue(HotBlobs(budget: 1 << 20).put(Hasher.digest(big), big, mediaType: "t"))
    }
}
