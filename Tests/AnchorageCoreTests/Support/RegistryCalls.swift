import Foundation
import XCTest
@testable import AnchorageCore

/// One HTTP exchange made with the real curl, for push-protocol tests:
/// status, headers (lower-cased names) and body.
struct Exchange {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Makes registry API calls against one base URL (a real `docker-registry`
/// or Anchorage), with optional Basic credentials.
struct RegistryCalls: @unchecked Sendable {
    let base: String
    let credentials: String?
    let dir: TempDir

    func call(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) throws -> Exchange {
        let id = UUID().uuidString.prefix(8)
        let headFile = dir.file("h-\(id)"), outFile = dir.file("o-\(id)")
        var args = ["-sS", "-X", method, "-D", headFile, "-o", outFile, "-w", "%{http_code}", "-H", "Expect:"]
        if method == "HEAD" { args = ["-sS", "-I", "-D", headFile, "-o", outFile, "-w", "%{http_code}"] }
        if let credentials { args += ["-u", credentials] }
        for (k, v) in headers { args += ["-H", "\(k): \(v)"] }
        if let body {
            let bodyFile = dir.file("b-\(id)")
            FileManager.default.createFile(atPath: bodyFile, contents: Data(body))
            args += ["--data-binary", "@\(bodyFile)"]
            if headers["Content-Type"] == nil { args += ["-H", "Content-Type: application/octet-stream"] }
        }
        let url = path.hasPrefix("http") ? path : base + path
        let r = try runCommand(["curl"] + args + [url], timeout: 120)
        guard r.status == 0 else { throw NSError(domain: "curl", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
        var headers: [String: String] = [:]
        let headText = (try? String(contentsOfFile: headFile, encoding: .utf8)) ?? ""
        // The last response's head (curl writes every head of a 100-continue or redirect).
        let lastHead = headText.components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }.last ?? ""
        for line in lastHead.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let out = FileManager.default.contents(atPath: outFile).map { [UInt8]($0) } ?? []
        return Exchange(status: Int(r.stdout) ?? 0, headers: headers, body: out)
    }

    /// Pushes a blob as containerd and oras do: `POST`, then one `PUT
    /// ?digest=` with the whole body; its digest.
    @discardableResult
    func pushBlob(_ repo: String, _ bytes: [UInt8]) throws -> String {
        let d = digestOf(bytes)
        let start = try call("POST", "/v2/\(repo)/blobs/uploads/")
        let location = try XCTUnwrap(start.header("Location"), "upload to \(repo): \(start.status) \(start.text)")
        let r = try call("PUT", "\(location)\(location.contains("?") ? "&" : "?")digest=\(d)", body: bytes)
        XCTAssertEqual(r.status, 201, "upload to \(repo): \(r.text)")
        return d
    }

    /// Pushes an image manifest naming `config` and `layers` (pushed first);
    /// its digest.
    @discardableResult
    func pushImage(_ repo: String, tag: String, config: [UInt8], layers: [[UInt8]], subject: (String, Int)? = nil) throws -> (digest: String, status: Int) {
        let c = try pushBlob(repo, config)
        var layerJSON: [String] = []
        for l in layers {
            let d = try pushBlob(repo, l)
            layerJSON.append("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"\(d)\",\"size\":\(l.count)}")
        }
        var m = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"\(c)\",\"size\":\(config.count)},\"layers\":[\(layerJSON.joined(separator: ","))]"
        if let subject { m += ",\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"\(subject.0)\",\"size\":\(subject.1)}" }
        m += "}"
        let r = try call("PUT", "/v2/\(repo)/manifests/\(tag)", body: Array(m.utf8), headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"])
        return (digestOf(Array(m.utf8)), r.status)
    }
}

func digestOf(_ bytes: [UInt8]) -> String {
    "sha256:" + Hasher.digest(bytes).hex
}

/// Deterministic pseudo-random bytes.
func fixtureBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: x >> 33)
    }
}

/// An Anchorage with `[auth]` naming an htpasswd of alice (pw-a) and bob
/// (pw-b), and `config` after it.
func startWithUsers(_ test: XCTestCase, _ config: String, dir: TempDir? = nil) throws -> (AnchorageServer, TempDir) {
    let d = dir ?? TempDir(test)
    let htpasswd = d.file("htpasswd")
    if !FileManager.default.fileExists(atPath: htpasswd) {
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", htpasswd, "alice", "pw-a"]).status, 0)
        XCTAssertEqual(try runCommand(["htpasswd", "-Bb", htpasswd, "bob", "pw-b"]).status, 0)
    }
    let m = try AnchorageServer(test, config: "[auth]\nhtpasswd = \(htpasswd)\n\(config)", dir: d)
    return (m, d)
}

/// An Anchorage with `[hosted "local"]` (`writers = alice`); `keys` go into
/// the hosted section.
func startHostedServer(_ test: XCTestCase, _ keys: String = "", dir: TempDir? = nil) throws -> (AnchorageServer, TempDir) {
    try startWithUsers(test, "[hosted \"local\"]\nwriters = alice\n\(keys)", dir: dir)
}

/// Mounts a tmpfs of `size` (e.g. "8m") at `path` for the test (needs root).
func mountSmallDisk(_ test: XCTestCase, at path: String, size: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let mount = try runCommand(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
    XCTAssertEqual(mount.status, 0, "this test needs root to mount a tmpfs: \(mount.stderr)")
    test.addTeardownBlock { _ = try? runCommand(["umount", "-l", path]) }
}

/// Writes an OCI layout with make_oci_image.py.
func makeImageLayout(_ path: String, tag: String, layers: Int, layerSize: Int, seed: String, multiarch: Bool = false) throws {
    let r = try runCommand(["python3", testbenchScript("make_oci_image.py"), path, "--tag", tag, "--layers", "\(layers)", "--layer-size", "\(layerSize)", "--seed", seed] + (multiarch ? ["--multiarch"] : []), timeout: 300)
    guard r.status == 0 else { throw NSError(domain: "fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: r.stderr]) }
}

/// Asks until `ok` holds, for at most 60 s: for what the daemon finishes
/// just after a client is answered (a blob's commit after its last byte, a
/// breaker's probe one cooldown later), however loaded the machine.
func eventually(_ what: String, _ ok: () throws -> Bool) rethrows -> Bool {
    let until = Date().addingTimeInterval(60)
    while Date() < until {
        if try ok() { return true }
        usleep(200_000)
    }
    return false
}

/// Whether a cached image's manifest, config and layers are all in the cache (console API).
func fullyCached(_ base: String, _ auth: [String], source: String, name: String, tag: String) -> Bool {
    guard let out = try? curl(["-s"] + auth + ["\(base)/api/image?kind=cached&source=\(source)&name=\(name)&ref=\(tag)"]).stdout,
          let image = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any],
          let layers = image["layers"] as? [[String: Any]], let config = image["config"] as? [String: Any] else { return false }
    return config["available"] as? Bool == true && layers.allSatisfy { $0["available"] as? Bool == true }
}

