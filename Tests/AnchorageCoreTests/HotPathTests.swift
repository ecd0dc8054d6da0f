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
        XCTAssertTrue("keep-alive, close".containsBytes("close"))
        XCTAssertFalse("".containsBytes("close"))
        // On a substring, indices stay those of the base string.
        let sub = p.dropFirst(4)
        XCTAssertEqual(sub.lastRange(ofBytes: "/manifests/").map { String(sub[..<$0.lowerBound]) }, "a/manifests/b")
        // Non-ASCII text is searched byte-wise, without Unicode folding.
        XCTAssertNil("/v2/é/blobs".lastRange(ofBytes: "/e/"))
        XCTAssertNotNil("/v2/é/blobs/".lastRange(ofBytes: "/blobs/"))
    }

    /// The registry router's slicing on bytes: the same routes and errors as
    /// the grammar says, for the paths a client sends and hostile ones.
    func testRegistryRouterOnBytes() throws {
        let dir = TempDir(self)
        let config = try Config.parse("""
            [cache]
            path = \(dir.path)/cache
            [registry "docker.io"]
            url = https://registry-1.docker.io
            default = true
            [registry "ghcr.io"]
            url = https://ghcr.io
            [hosted "local"]
            """, file: "x")
        let router = Mirror(config: config).registry.router
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        func route(_ path: String, ns: String? = nil) -> String {
            switch router.route(path: path, ns: ns) {
            case .success(let (u, r)):
                switch r {
                case .base: return "\(u.name) base"
                case .uploads(let n, let id): return "\(u.name) uploads \(n)\(id.map { " \($0.value)" } ?? "")"
                case .referrers(let n, let d): return "\(u.name) referrers \(n) \(d)"
                case .tags(let n): return "\(u.name) tags \(n)"
                case .manifest(let n, let ref): return "\(u.name) manifest \(n) \(ref)"
                case .blob(let n, let d): return "\(u.name) blob \(n) \(d)"
                }
            case .failure(let e): return "error \(e.status.code) \(e.message)"
            }
        }
        XCTAssertEqual(route("/v2"), "docker.io base")
        XCTAssertEqual(route("/v2/"), "docker.io base")
        XCTAssertEqual(route("/v2/alpine/manifests/3.20"), "docker.io manifest library/alpine 3.20")
        XCTAssertEqual(route("/v2/ghcr.io/o/r/manifests/\(digest)"), "ghcr.io manifest o/r \(digest)")
        XCTAssertEqual(route("/v2/o/r/blobs/\(digest)", ns: "ghcr.io"), "ghcr.io blob o/r \(digest)")
        XCTAssertEqual(route("/v2/ghcr.io/o/r/blobs/\(digest)", ns: "ghcr.io"), "ghcr.io blob ghcr.io/o/r \(digest)")
        XCTAssertEqual(route("/v2/O/r/blobs/\(digest)"), "error 400 invalid repository name")
        XCTAssertEqual(route("/v2/a/b/tags/list"), "docker.io tags a/b")
        XCTAssertEqual(route("/v2/local/team/app/manifests/1.4"), "local manifest team/app 1.4", "a hosted namespace by its first component")
        XCTAssertEqual(route("/v2/team/app/manifests/1.4", ns: "local"), "local manifest team/app 1.4")
        XCTAssertEqual(route("/v2/a/manifests/b/manifests/v1"), "docker.io manifest a/manifests/b v1")
        XCTAssertEqual(route("/v2/a/blobs/uploads/"), "docker.io uploads library/a")
        XCTAssertEqual(route("/v2/ghcr.io/o/r/blobs/uploads/abc"), "ghcr.io uploads o/r abc")
        XCTAssertEqual(route("/v2/a/blobs/uploads/a%2Fb"), "error 404 blob upload unknown")
        XCTAssertEqual(route("/v2/a/blobs/sha256:00"), "error 400 invalid digest")
        XCTAssertEqual(route("/v2/o/r/referrers/\(digest)"), "docker.io referrers o/r \(digest)")
        XCTAssertEqual(route("/v2/a/blobs/x/referrers/\(digest)"), "docker.io referrers a/blobs/x \(digest)")
        XCTAssertEqual(route("/v2/a/referrers/sha256:00"), "error 400 invalid digest")
        XCTAssertEqual(route("/v2/a/manifests/bad:tag"), "error 400 invalid digest")
        XCTAssertEqual(route("/v2/a/manifests/-x"), "error 404 manifest unknown: not a valid tag")
        XCTAssertEqual(route("/v2/a/manifests/.INVALID_MANIFEST_NAME"), "error 404 manifest unknown: not a valid tag")
        XCTAssertEqual(route("/v2/../manifests/x"), "error 400 invalid repository name")
        XCTAssertEqual(route("/v2//tags/list"), "error 400 invalid repository name")
        XCTAssertEqual(route("/v2/é/manifests/x"), "error 400 invalid repository name")
        XCTAssertEqual(route("/v2/a/other"), "error 404 unknown registry endpoint")
        XCTAssertEqual(route("/v2/a/manifests/x", ns: "quay.io").prefix(36), "error 404 unknown upstream ns=quay.i")
        XCTAssertEqual(route("/v3/a/manifests/x"), "error 404 not a registry path")
    }

    /// The head is written into memory sized beforehand: every field, the
    /// server's own fields once, the largest length, room for a body.
    func testHeadBytes() {
        var r = HTTPResponse(status: .ok, headers: HTTPHeaders([("Content-Type", "text/é"), ("content-length", "5"), ("accept-ranges", "none"), ("Connection", "x")]),
                             body: .lengthOnly(Int64.max))
        func head(_ r: HTTPResponse, keepAlive: Bool = true, version: HTTPVersion = .http11, reserving: Int = 0) -> String {
            String(decoding: ResponseFinalizer.headBytes(r, keepAlive: keepAlive, version: version, date: "D", reserving: reserving), as: UTF8.self)
        }
        XCTAssertEqual(head(r), "HTTP/1.1 200 OK\r\nContent-Type: text/é\r\naccept-ranges: none\r\nContent-Length: 9223372036854775807\r\nDate: D\r\nServer: anchorage\r\n\r\n")
        r.acceptsRanges = true
        XCTAssertEqual(head(r, keepAlive: false, reserving: 1 << 16), "HTTP/1.1 200 OK\r\nContent-Type: text/é\r\nAccept-Ranges: bytes\r\nContent-Length: 9223372036854775807\r\nDate: D\r\nServer: anchorage\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(head(HTTPResponse(status: .notModified), version: .http10), "HTTP/1.1 304 Not Modified\r\nDate: D\r\nServer: anchorage\r\nConnection: keep-alive\r\n\r\n")
        let long = String(repeating: "v", count: 70_000)
        XCTAssertEqual(head(HTTPResponse(status: .ok, headers: HTTPHeaders([("X", long)]), body: .bytes([1, 2]))),
                       "HTTP/1.1 200 OK\r\nX: \(long)\r\nContent-Length: 2\r\nDate: D\r\nServer: anchorage\r\n\r\n")
    }

    /// Chart paths as the metrics count them.
    func testChartRouteLabels() {
        let cases: [(String, RouteLabel)] = [
            ("/charts/r/index.yaml", RouteLabel(.chartIndex)),
            ("/charts/r/nginx-1.2.3.tgz", RouteLabel(.chartArchive, repository: "charts/r/nginx")),
            ("/charts/r/my-chart-v2.0.0-rc.1.tgz", RouteLabel(.chartArchive, repository: "charts/r/my-chart")),
            ("/charts/r/nginx-1.2.3.tgz.prov", RouteLabel(.chartProvenance)), ("/charts/r/x", .other), ("/charts/r", .other),
        ]
        for (path, label) in cases { XCTAssertEqual(ChartHandler.label(path), label, path) }
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
