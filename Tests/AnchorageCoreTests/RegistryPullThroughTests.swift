import Foundation
import XCTest

/// Pull-through against a real `docker-registry` upstream with real skopeo.
final class RegistryPullThroughTests: XCTestCase {
    private func mirror(_ upstream: UpstreamRegistry, name: String = "upstream.test", cache: String = "", registryKeys: String = "", extra: String = "") throws -> AnchorageServer {
        try AnchorageServer(self, cacheKeys: cache, config: "[registry \"\(name)\"]\nurl = \(upstream.url)\ndefault = true\n\(registryKeys)\n\(extra)")
    }

    private func skopeo(_ args: [String]) throws -> RunResult {
        try runCommand(["skopeo"] + args, timeout: 300)
    }

    func testSingleAndMultiArchPullsAreByteExactAndSecondPullIsCached() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 3, layerSize: 2_000_000)
        try up.push(name: "team/multi", tag: "v2", layers: 2, multiarch: true)
        let m = try mirror(up)
        let out = TempDir(self, "pulls")

        for (image, all) in [("team/app:v1", false), ("team/multi:v2", true)] {
            // Manifests byte-identical to the upstream's.
            let direct = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(up.host)/\(image)"])
            let viaMirror = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(m.port)/\(image)"])
            XCTAssertEqual(viaMirror.status, 0, viaMirror.stderr)
            XCTAssertEqual(viaMirror.stdout, direct.stdout)
            // Whole image: skopeo checks every blob digest; compare with a direct copy too.
            let safe = image.replacingOccurrences(of: "/", with: "_")
            let a = out.file("\(safe)-direct"), b = out.file("\(safe)-mirror")
            var flags = ["copy", "--quiet", "--src-tls-verify=false"]
            if all { flags.append("--all") }
            XCTAssertEqual(try skopeo(flags + ["docker://\(up.host)/\(image)", "dir:\(a)"]).status, 0)
            let pulled = try skopeo(flags + ["docker://127.0.0.1:\(m.port)/\(image)", "dir:\(b)"])
            XCTAssertEqual(pulled.status, 0, pulled.stderr)
            XCTAssertEqual(try runCommand(["diff", "-r", a, b]).status, 0, "mirror copy differs from direct copy")
        }
        // Multi-arch: the index is kept whole (both platforms listed).
        let index = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(m.port)/team/multi:v2"]).stdout
        XCTAssertTrue(index.contains("\"arm64\"") && index.contains("\"amd64\""), index)

        // Second pull: from the cache, with the upstream stopped.
        up.stop()
        let again = out.file("again")
        let r = try skopeo(["copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/team/app:v1", "dir:\(again)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try runCommand(["diff", "-r", out.file("team_app:v1-direct"), again]).status, 0)
        XCTAssertFalse(m.accessLines("/blobs/").filter { $0.contains("cache=hit") }.isEmpty)
    }

    func testRoutingNsPathPrefixDefaultAndLibrary() throws {
        let hub = try UpstreamRegistry(self)
        let other = try UpstreamRegistry(self)
        try hub.push(name: "library/alpine", tag: "3", layers: 1)
        try other.push(name: "owner/tool", tag: "1.0", layers: 1)
        let m = try AnchorageServer(self, config: """
        [registry "docker.io"]
        url = \(hub.url)
        default = true
        [registry "ghcr.io"]
        url = \(other.url)
        """)
        func status(_ path: String) throws -> String {
            try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)\(path)"]).stdout
        }
        // Docker's registry-mirrors: no upstream named, single component → library/.
        XCTAssertEqual(try status("/v2/alpine/manifests/3"), "200")
        XCTAssertEqual(try status("/v2/library/alpine/manifests/3"), "200")
        // containerd: ?ns=HOST.
        XCTAssertEqual(try status("/v2/owner/tool/manifests/1.0?ns=ghcr.io"), "200")
        XCTAssertEqual(try status("/v2/alpine/manifests/3?ns=docker.io"), "200")
        // Path prefix (podman mirror locations with a path, plain clients).
        XCTAssertEqual(try status("/v2/ghcr.io/owner/tool/manifests/1.0"), "200")
        XCTAssertEqual(try status("/v2/owner/tool/manifests/1.0"), "404", "the default upstream does not have it")
        // Unknown ns: a clear 404 registry error, never a fallback.
        let unknown = try curl(["-w", "\n%{http_code}", "\(m.base)/v2/alpine/manifests/3?ns=quay.io"])
        XCTAssertTrue(unknown.stdout.hasSuffix("\n404"))
        XCTAssertTrue(unknown.stdout.contains("\"NAME_UNKNOWN\"") && unknown.stdout.contains("quay.io"), unknown.stdout)
        // API base.
        let base = try curl(["-i", "\(m.base)/v2/"])
        XCTAssertTrue(base.stdout.contains("Docker-Distribution-API-Version: registry/2.0"))
        XCTAssertTrue(base.stdout.hasSuffix("{}"))
        // Tags list with n/last, through to the upstream.
        try hub.push(name: "library/alpine", tag: "4", layers: 1)
        XCTAssertEqual(try curl(["\(m.base)/v2/alpine/tags/list"]).stdout.replacingOccurrences(of: " ", with: ""), "{\"name\":\"library/alpine\",\"tags\":[\"3\",\"4\"]}\n")
        // n/last are applied here, on the lexically sorted list, with a
        // Link to the next page, whatever the upstream does with them (this
        // registry version ignores them).
        for t in ["10", "2", "a"] { try hub.push(name: "library/alpine", tag: t, layers: 1, seed: t) }
        func page(_ query: String) throws -> (body: String, link: String?) {
            let r = try curl(["-s", "-D", "-", "\(m.base)/v2/alpine/tags/list\(query)"]).stdout
            let parts = r.components(separatedBy: "\r\n\r\n")
            let link = parts[0].split(separator: "\r\n").first { $0.hasPrefix("Link: ") }.map { String($0.dropFirst(6)) }
            return (parts.dropFirst().joined(), link)
        }
        var p = try page("?n=2")
        XCTAssertEqual(p.body, "{\"name\":\"library/alpine\",\"tags\":[\"10\",\"2\"]}\n")
        XCTAssertEqual(p.link, "</v2/alpine/tags/list?n=2&last=2>; rel=\"next\"")
        p = try page("?n=2&last=2")
        XCTAssertEqual(p.body, "{\"name\":\"library/alpine\",\"tags\":[\"3\",\"4\"]}\n")
        p = try page("?n=2&last=4")
        XCTAssertEqual(p.body, "{\"name\":\"library/alpine\",\"tags\":[\"a\"]}\n")
        XCTAssertNil(p.link, "the last page has no next")
        XCTAssertEqual(try page("?n=0").body, "{\"name\":\"library/alpine\",\"tags\":[]}\n")
        XCTAssertEqual(try page("?n=1&last=%0d%0aX:y").body, "{\"name\":\"library/alpine\",\"tags\":[\"10\"]}\n", "an invalid last is ignored")
        XCTAssertFalse(hub.log.contains("tags/list?"), "nothing of the client's query reaches the upstream")
    }

    func testHostileNamesAndPushMethods() throws {
        let up = try UpstreamRegistry(self)
        let m = try mirror(up)
        let cases: [(String, String, String)] = [
            ("GET", "/v2/../etc/passwd/manifests/latest", "NAME_INVALID"),
            ("GET", "/v2/a/%2e%2e/b/manifests/latest", "NAME_INVALID"),
            ("GET", "/v2/a%2Fb/manifests/latest", "NAME_INVALID"),
            ("GET", "/v2/UPPER/manifests/latest", "NAME_INVALID"),
            ("GET", "/v2//etc/manifests/latest", "NAME_INVALID"),
            ("GET", "/v2/a/manifests/..%2f..%2fx", "MANIFEST_UNKNOWN"),
            ("GET", "/v2/a/manifests/.INVALID_MANIFEST_NAME", "MANIFEST_UNKNOWN"),
            ("GET", "/v2/a/blobs/uploads/some-id", "BLOB_UPLOAD_UNKNOWN"),
            ("GET", "/v2/a/manifests/sha256:abc", "DIGEST_INVALID"),
            ("GET", "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"),
            ("GET", "/v2/a/blobs/sha256:" + String(repeating: "A", count: 64), "DIGEST_INVALID"),
            ("GET", "/v2/a/blobs/../../../../etc/passwd", "DIGEST_INVALID"),
            ("PUT", "/v2/a/manifests/latest", "UNSUPPORTED"),
            ("POST", "/v2/a/blobs/uploads/", "UNSUPPORTED"),
            ("DELETE", "/v2/a/manifests/latest", "UNSUPPORTED"),
            ("PATCH", "/v2/a/blobs/uploads/x", "UNSUPPORTED"),
        ]
        for (method, path, code) in cases {
            let r = try curl(["--path-as-is", "-X", method, "-w", "\n%{http_code}", "\(m.base)\(path)"])
            XCTAssertTrue(r.stdout.contains("\"code\":\"\(code)\""), "\(method) \(path): \(r.stdout)")
            let status = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            XCTAssertTrue(["400", "404", "405"].contains(status), "\(method) \(path) → \(status)")
        }
        // A manifest that cannot exist and an upload that does not: 404, as the distribution registry answers.
        for path in ["/v2/a/manifests/.INVALID_MANIFEST_NAME", "/v2/a/manifests/-x", "/v2/a/blobs/uploads/some-id"] {
            XCTAssertEqual(try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(m.base)\(path)"]).stdout, "404", path)
        }
        // Nothing outside the cache directory was created.
        XCTAssertFalse(FileManager.default.fileExists(atPath: m.dir.path + "/etc"))
    }

    func testSingleFlightTwentyClientsOneUpstreamFetch() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/big", tag: "v1", layers: 1, layerSize: 200_000_000)
        let m = try mirror(up)
        // The big layer's digest: the largest entry of the manifest.
        let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/big/manifests/v1"]).stdout
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
        let layers = try XCTUnwrap(obj["layers"] as? [[String: Any]])
        let big = try XCTUnwrap(layers.max { ($0["size"] as? Int ?? 0) < ($1["size"] as? Int ?? 0) })
        let digest = try XCTUnwrap(big["digest"] as? String)
        let hex = String(digest.dropFirst(7))
        let script = """
        set -e
        for i in $(seq 1 20); do
          ( curl -sS --fail "\(m.base)/v2/team/big/blobs/\(digest)" | sha256sum | cut -d' ' -f1 > "\(m.dir.path)/sum.$i" ) &
        done
        wait
        cat "\(m.dir.path)"/sum.*
        """
        let r = try runCommand(["bash", "-c", script], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let sums = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(sums.count, 20)
        XCTAssertTrue(sums.allSatisfy { $0 == hex }, "every copy has the right digest")
        XCTAssertEqual(up.blobGets(digest), 1, "exactly one upstream GET for 20 clients")
        // And it is now a cache hit.
        usleep(300_000)
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/big/blobs/\(digest)"]).stdout, "200")
        XCTAssertEqual(up.blobGets(digest), 1)
    }

    /// Regression: the send timeout of a blob streamed while it was fetched
    /// was set at the first full socket buffer and never cleared, so a client
    /// slower than the upstream was cut off `send_timeout` later although it
    /// kept reading (found by bench/run: 50 clients piping through sha256sum).
    func testSlowReaderOfAColdBlobIsNotCutOff() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/slow", tag: "v1", layers: 1, layerSize: 100_000_000)
        let m = try AnchorageServer(self, serverKeys: "send_timeout = 2s\n", config: "[registry \"upstream.test\"]\nurl = \(up.url)\ndefault = true\n")
        let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/slow/manifests/v1"]).stdout
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
        let layer = try XCTUnwrap((obj["layers"] as? [[String: Any]])?.first)
        let digest = try XCTUnwrap(layer["digest"] as? String)
        for pass in ["cold", "cached"] {
            // 100 MB at 25 MB/s: about 4 s of steady reading, twice send_timeout.
            // (Much slower readers can legitimately stall the sender longer
            // than 2 s: megabytes sit in the socket buffers between wake-ups.)
            let out = m.dir.file("slow-\(pass)")
            let r = try curl(["--limit-rate", "25M", "-o", out, "-w", "%{size_download}", "\(m.base)/v2/team/slow/blobs/\(digest)"], timeout: 60)
            XCTAssertEqual(r.status, 0, "\(pass): curl exit \(r.status) after \(r.stdout) bytes")
            XCTAssertEqual(try sha256File(out), digest, pass)
        }
    }

    func testTamperedUpstreamBlobIsNeverCachedNorServedWhole() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1, layerSize: 3_000_000)
        let m = try mirror(up)
        let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/app/manifests/v1"]).stdout
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
        let layer = try XCTUnwrap((obj["layers"] as? [[String: Any]])?.first)
        let digest = try XCTUnwrap(layer["digest"] as? String)
        let size = try XCTUnwrap(layer["size"] as? Int)
        // Same length, one byte flipped in the middle.
        let path = up.blobDataPath(digest)
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        bytes[size / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path))

        for _ in 0..<2 {
            let out = m.dir.file("tampered")
            let r = try curl(["-o", out, "-w", "%{size_download}", "\(m.base)/v2/team/app/blobs/\(digest)"])
            XCTAssertNotEqual(r.status, 0, "curl must see a cut transfer")
            XCTAssertLessThan(Int(r.stdout) ?? Int.max, size, "the client never holds the complete body")
        }
        XCTAssertEqual(up.blobGets(digest), 2, "not cached: each request goes upstream again")
        XCTAssertTrue(m.log.contains("digest mismatch"), m.log)
        let v = try runCommand([try anchorageBinary(), "verify", "--config", m.dir.file("mirror.conf")])
        XCTAssertEqual(v.status, 0, v.stdout)
        let hex = digest.dropFirst(7)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)"))
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(m.dir.path)/cache/tmp")) ?? [], [], "no temp file left")
    }

    func testLRUKeepsTheCacheUnderBudget() throws {
        let up = try UpstreamRegistry(self)
        // 6 images of ~1 MB each against a 3 MiB cache.
        var digests: [String] = []
        for i in 0..<6 {
            try up.push(name: "team/img\(i)", tag: "v1", layers: 1, layerSize: 1_000_000)
        }
        let m = try mirror(up, cache: "max_size = 3MiB\n")
        for i in 0..<6 {
            let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/img\(i)/manifests/v1"]).stdout
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
            let d = try XCTUnwrap((obj["layers"] as? [[String: Any]])?.first?["digest"] as? String)
            digests.append(d)
            XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/img\(i)/blobs/\(d)"]).stdout, "200")
            // Re-use the first image so it stays recently used.
            if i > 0 {
                XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/img0/blobs/\(digests[0])"]).stdout, "200")
            }
        }
        func cached(_ d: String) -> Bool {
            let hex = d.dropFirst(7)
            return FileManager.default.fileExists(atPath: "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)")
        }
        // A client gets a blob's last bytes before its entry is committed
        // (fsync, rename, then eviction to the budget): wait for the last one.
        let deadline = Date().addingTimeInterval(10)
        while !cached(digests[5]) && Date() < deadline { usleep(20_000) }
        let du = try runCommand(["du", "-sb", "\(m.dir.path)/cache/blobs"]).stdout
        let used = Int(du.split(separator: "\t").first ?? "") ?? Int.max
        XCTAssertLessThanOrEqual(used, 3 << 20, "cache holds \(used) bytes")
        XCTAssertTrue(m.log.contains("msg=evicted"))
        XCTAssertTrue(cached(digests[0]), "the most recently used blob survives")
        XCTAssertTrue(cached(digests[5]))
        XCTAssertFalse(cached(digests[1]), "the least recently used went first")
    }

    func testStaleIfErrorAndFastFailureWhenUpstreamIsDown() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        try up.push(name: "team/app", tag: "v2", layers: 1, seed: "other")
        let m = try mirror(up, cache: "manifest_ttl = 1s\n")
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        XCTAssertEqual(try curl(accept + ["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/app/manifests/v1"]).stdout, "200")
        // Past the TTL with the upstream alive: revalidated with a
        // conditional GET the upstream answers 304, not re-fetched.
        usleep(1_200_000)
        let reval = try curl(accept + ["-D", "-", "-o", "/dev/null", "\(m.base)/v2/team/app/manifests/v1"]).stdout
        XCTAssertTrue(reval.contains("X-Anchorage-Cache: REVALIDATED"), reval)
        XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/v1", status: 200), 1, up.log)
        XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/v1", status: 304), 1, up.log)

        up.stop()
        usleep(1_200_000)
        let t0 = Date()
        let stale = try curl(accept + ["-D", "-", "-o", "/dev/null", "\(m.base)/v2/team/app/manifests/v1"]).stdout
        XCTAssertTrue(stale.hasPrefix("HTTP/1.1 200"), stale)
        XCTAssertTrue(stale.contains("Warning: 110"), stale)
        XCTAssertTrue(stale.contains("X-Anchorage-Cache: STALE"), stale)
        // Never cached: a quick 503 UNAVAILABLE, no hang.
        let miss = try curl(accept + ["-w", "\n%{http_code}", "\(m.base)/v2/team/app/manifests/v2"]).stdout
        XCTAssertTrue(miss.hasSuffix("\n503"), miss)
        XCTAssertTrue(miss.contains("\"UNAVAILABLE\""), miss)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
        XCTAssertTrue(m.log.contains("served stale manifest"))
    }

    /// Requests the upstream registry's access log shows for METHOD PATH
    /// answered with STATUS.
    private func upstreamAnswers(_ up: UpstreamRegistry, _ method: String, _ path: String, status: Int) -> Int {
        up.log.components(separatedBy: "\"\(method) \(path) HTTP/1.1\" \(status) ").count - 1
    }

    /// A tag whose content is an OCI index, asked for by clients that take
    /// only image manifests and by clients that take indexes: each gets
    /// what the upstream gives its Accept, in either order; a 404 for one
    /// Accept is not remembered for the other.
    func testCachedTagsHonourTheClientsAccept() throws {
        let up = try UpstreamRegistry(self)
        let index = try up.push(name: "team/multi", tag: "v1", layers: 1, multiarch: true)
        let m = try mirror(up)
        let url = "\(m.base)/v2/team/multi/manifests/v1"
        let imageOnly = "Accept: application/vnd.oci.image.manifest.v1+json"
        let withIndex = "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
        func get(_ accept: String) throws -> String {
            try curl(["-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", "-H", accept, url]).stdout
        }
        // What the upstream itself answers a client that takes no index.
        let direct = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", imageOnly, "\(up.url)/v2/team/multi/manifests/v1"]).stdout
        XCTAssertEqual(direct, "404", "this registry refuses an index to such a client")
        XCTAssertEqual(try get(imageOnly), "404 application/json; charset=utf-8")
        XCTAssertEqual(try get(withIndex), "200 application/vnd.oci.image.index.v1+json", "the first client's 404 is not the second's")
        XCTAssertEqual(try get(imageOnly), "404 application/json; charset=utf-8", "the cached index is not served to a client that does not take it")
        let hit = try curl(["-s", "-D", "-", "-o", "/dev/null", "-H", withIndex, url]).stdout
        XCTAssertTrue(hit.contains("X-Anchorage-Cache: HIT") && hit.contains("Docker-Content-Digest: \(index)"), hit)
    }

    /// `docker pull` asks HEAD, then GET: the HEAD's fetch serves the GET
    /// (Docker Hub counts every manifest GET against the pull limit).
    func testHeadThenGetOfAnUncachedTagCostsOneUpstreamGet() throws {
        let up = try UpstreamRegistry(self)
        let tags = ["v1", "v2", "v3"]
        for t in tags { try up.push(name: "team/app", tag: t, layers: 1, seed: t) }
        let m = try mirror(up)
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        for t in tags {
            let url = "\(m.base)/v2/team/app/manifests/\(t)"
            XCTAssertEqual(try curl(accept + ["-I", "-o", "/dev/null", "-w", "%{http_code}", url]).stdout, "200")
            let get = try curl(accept + ["-D", "-", "-o", "/dev/null", url]).stdout
            XCTAssertTrue(get.hasPrefix("HTTP/1.1 200") && get.contains("X-Anchorage-Cache: HIT"), get)
            XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/\(t)", status: 200), 1, "\(t): \(up.log)")
        }
    }

    /// A tag that moved upstream costs one round trip past its TTL: the
    /// conditional GET brings the new manifest (no HEAD first), and the
    /// mirror serves and remembers the new digest.
    func testMovedTagIsFetchedByTheRevalidatingGet() throws {
        let up = try UpstreamRegistry(self)
        let first = try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try mirror(up, cache: "manifest_ttl = 1s\n")
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        let url = "\(m.base)/v2/team/app/manifests/v1"
        XCTAssertTrue(try curl(accept + ["-D", "-", "-o", "/dev/null", url]).stdout.contains("Docker-Content-Digest: \(first)"))
        let moved = try up.push(name: "team/app", tag: "v1", layers: 1, seed: "moved")
        XCTAssertNotEqual(first, moved)
        usleep(1_200_000)
        let again = try curl(accept + ["-D", "-", "-o", "/dev/null", url]).stdout
        XCTAssertTrue(again.contains("Docker-Content-Digest: \(moved)"), again)
        XCTAssertTrue(again.contains("X-Anchorage-Cache: MISS"), again)
        XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/v1", status: 200), 2, up.log)
        XCTAssertEqual(upstreamAnswers(up, "HEAD", "/v2/team/app/manifests/v1", status: 200), 0, up.log)
        // Within the new TTL the new digest is a hit, the old one no longer served for the tag.
        let hit = try curl(accept + ["-D", "-", "-o", "/dev/null", url]).stdout
        XCTAssertTrue(hit.contains("Docker-Content-Digest: \(moved)") && hit.contains("X-Anchorage-Cache: HIT"), hit)
    }

    /// Docker Hub counts every manifest GET (even one answered 304) as a
    /// pull and no HEAD: an upstream named docker.io is revalidated with a
    /// HEAD. (The real Hub is not reachable from tests: a local registry
    /// stands under its name.)
    func testDockerHubTagsAreRevalidatedWithHead() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try mirror(up, name: "docker.io", cache: "manifest_ttl = 1s\n")
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        let url = "\(m.base)/v2/team/app/manifests/v1"
        XCTAssertEqual(try curl(accept + ["-o", "/dev/null", "-w", "%{http_code}", url]).stdout, "200")
        usleep(1_200_000)
        let reval = try curl(accept + ["-D", "-", "-o", "/dev/null", url]).stdout
        XCTAssertTrue(reval.contains("X-Anchorage-Cache: REVALIDATED"), reval)
        XCTAssertEqual(upstreamAnswers(up, "HEAD", "/v2/team/app/manifests/v1", status: 200), 1, up.log)
        XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/v1", status: 200), 1, up.log)
        XCTAssertEqual(upstreamAnswers(up, "GET", "/v2/team/app/manifests/v1", status: 304), 0, up.log)
    }

    /// A fetched manifest is answered from memory and its files are written
    /// right after; a graceful stop waits for them, so the next process
    /// resolves the tag with the upstream gone.
    func testManifestFetchedJustBeforeAStopIsKept() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try mirror(up)
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        let first = try curl(accept + ["-D", "-", "-o", "/dev/null", "\(m.base)/v2/team/app/manifests/v1"]).stdout
        XCTAssertTrue(first.contains("X-Anchorage-Cache: MISS"), first)
        XCTAssertEqual(m.stop(), 0)
        up.stop()
        let again = try AnchorageServer(self, config: "[registry \"upstream.test\"]\nurl = \(up.url)\ndefault = true\n", dir: m.dir)
        let second = try curl(accept + ["-D", "-", "-o", "/dev/null", "\(again.base)/v2/team/app/manifests/v1"]).stdout
        XCTAssertTrue(second.hasPrefix("HTTP/1.1 200"), second)
        XCTAssertTrue(second.contains("X-Anchorage-Cache: HIT") || second.contains("X-Anchorage-Cache: STALE"), second)
    }

    func testNegativeCacheForMissingTags() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try mirror(up)
        for _ in 0..<5 {
            XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/team/app/manifests/nope"]).stdout, "404")
        }
        XCTAssertEqual(up.log.components(separatedBy: "\"GET /v2/team/app/manifests/nope ").count - 1, 1, "one upstream ask within negative_ttl")
    }

    /// Mirror tiers: an Anchorage whose upstream is another Anchorage.
    func testAnchorageAsTheUpstreamOfAnother() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 1_000_000)
        let site = try mirror(up)
        let edge = try AnchorageServer(self, config: "[registry \"site.mirror\"]\nurl = \(site.base)\n")
        let out = edge.dir.file("pulled")
        let r = try skopeo(["copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(edge.port)/team/app:v1", "dir:\(out)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(site.accessLines("/blobs/").isEmpty, "the edge pulled through the site mirror")
        let direct = try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://\(up.host)/team/app:v1"]).stdout
        XCTAssertEqual(try skopeo(["inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(edge.port)/team/app:v1"]).stdout, direct)
    }

    func testKill9During20ConcurrentPullsLeavesOnlyVerifiedEntries() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/big", tag: "v1", layers: 4, layerSize: 40_000_000)
        var m = try mirror(up)
        let script = """
        for i in $(seq 1 20); do
          skopeo copy --quiet --src-tls-verify=false docker://127.0.0.1:\(m.port)/team/big:v1 dir:\(m.dir.path)/pull.$i >/dev/null 2>&1 &
        done
        sleep 0.7
        """
        _ = try runCommand(["bash", "-c", script], timeout: 60)
        m.proc.kill9()
        // Restart on the same cache; verify is clean and pulls succeed.
        let conf = m.dir.file("mirror.conf")
        let v = try runCommand([try anchorageBinary(), "verify", "--config", conf])
        XCTAssertEqual(v.status, 0, v.stdout)
        m = try AnchorageServer(self, config: "[registry \"upstream.test\"]\nurl = \(up.url)\n", dir: m.dir)
        let r = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/team/big:v1", "dir:\(m.dir.path)/final"], timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try runCommand([try anchorageBinary(), "verify", "--config", conf]).status, 0)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(m.dir.path)/cache/tmp")) ?? ["?"], [], "leftover temp files removed at start")
    }
}
