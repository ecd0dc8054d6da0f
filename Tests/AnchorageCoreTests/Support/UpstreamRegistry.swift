import Foundation
import XCTest

/// A real `docker-registry` (the distribution registry) on a free loopback
/// port, with its storage in a temp dir; stopped at teardown.
final class UpstreamRegistry {
    let dir: TempDir
    let port: UInt16
    let storage: String
    private(set) var proc: BackgroundProcess?
    let configPath: String
    let test: XCTestCase
    var host: String { "127.0.0.1:\(port)" }
    var url: String { "http://127.0.0.1:\(port)" }

    /// `extraYAML` adds top-level keys (for example an `auth:` block).
    init(_ test: XCTestCase, extraYAML: String = "") throws {
        self.test = test
        dir = TempDir(test, "upstream")
        port = freePort()
        storage = dir.file("storage")
        configPath = dir.write("config.yml", """
        version: 0.1
        log: {level: info, accesslog: {disabled: false}}
        storage: {filesystem: {rootdirectory: \(storage)}, delete: {enabled: true}}
        http: {addr: 127.0.0.1:\(port)}
        health: {storagedriver: {enabled: false}}
        \(extraYAML)
        """)
        try start()
    }

    func start() throws {
        let p = try BackgroundProcess(test, ["docker-registry", "serve", configPath], logPath: dir.file("registry-\(UUID().uuidString.prefix(6)).log"))
        proc = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let r = try? runCommand(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "\(url)/v2/"], timeout: 5),
               r.stdout == "200" || r.stdout == "401" { return }
            usleep(50_000)
        }
        throw NSError(domain: "registry", code: 1, userInfo: [NSLocalizedDescriptionKey: "docker-registry did not start: \(p.log)"])
    }

    func stop() { proc?.stop() }

    var log: String { proc?.log ?? "" }

    /// How many GETs of this blob the registry answered.
    func blobGets(_ digest: String) -> Int {
        log.split(separator: "\n").filter { $0.contains("\"GET /v2/") && $0.contains("/blobs/\(digest) HTTP") }.count
    }

    /// Pushes an OCI layout made by make_oci_image.py; returns the top digest.
    @discardableResult
    func push(name: String, tag: String, layers: Int = 2, layerSize: Int = 64 * 1024, seed: String? = nil, multiarch: Bool = false, docker: Bool = false) throws -> String {
        let layout = dir.file("layout-\(UUID().uuidString.prefix(8))")
        var args = ["python3", testbenchScript("make_oci_image.py"), layout, "--tag", tag, "--layers", "\(layers)", "--layer-size", "\(layerSize)", "--seed", seed ?? "\(name):\(tag)"]
        if multiarch { args.append("--multiarch") }
        let made = try runCommand(args, timeout: 300)
        guard made.status == 0 else { throw NSError(domain: "fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: made.stderr]) }
        var copy = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if multiarch { copy.append("--all") }
        if docker { copy += ["--format", "v2s2"] }   // skopeo converts the OCI layout to Docker media types
        copy += ["oci:\(layout):\(tag)", "docker://\(host)/\(name):\(tag)"]
        let pushed = try runCommand(copy, timeout: 300)
        guard pushed.status == 0 else { throw NSError(domain: "push", code: 1, userInfo: [NSLocalizedDescriptionKey: pushed.stderr]) }
        try? FileManager.default.removeItem(atPath: layout)
        return made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The path of a blob's bytes in the registry's storage (for tampering).
    func blobDataPath(_ digest: String) -> String {
        let hex = digest.split(separator: ":")[1]
        return "\(storage)/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// A script from Tests/bench (shared by tests and benchmarks).
func testbenchScript(_ name: String) -> String {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("bench/\(name)").path
}

/// Manifest and blob digests of an image as pulled to a `dir:` copy.
func sha256File(_ path: String) throws -> String {
    let r = try runCommand(["sha256sum", path])
    return "sha256:" + (r.stdout.split(separator: " ").first.map(String.init) ?? "")
}
