import Foundation
import XCTest

/// The real helm v3 binary ($ANCHORAGE_HELM, installed by scripts/test) with
/// its own cache/config/data homes in a temp dir.
final class Helm {
    let binary: String
    let home: TempDir

    init(_ test: XCTestCase) throws {
        binary = try checkoutProgram(env: "ANCHORAGE_HELM", ".build-tools/helm", name: "helm")
        home = TempDir(test, "helm")
    }

    var env: [String: String] {
        ["HELM_CACHE_HOME": home.file("cache"), "HELM_CONFIG_HOME": home.file("config"), "HELM_DATA_HOME": home.file("data"),
         "HELM_EXPERIMENTAL_OCI": "1"]
    }

    @discardableResult
    func run(_ args: [String], cwd: String? = nil) throws -> RunResult {
        try runCommand([binary] + args, env: env, cwd: cwd, timeout: 120)
    }

    /// `helm create` + set the version + `helm package` into `dest`; returns the archive path.
    func package(chart: String, version: String, in work: String, dest: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        let dir = "\(work)/\(chart)-\(version)-src"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertEqual(try run(["create", chart], cwd: dir).status, 0)
        let chartYaml = "\(dir)/\(chart)/Chart.yaml"
        let text = try String(contentsOfFile: chartYaml, encoding: .utf8)
            .replacingOccurrences(of: "\nversion: 0.1.0", with: "\nversion: \(version)")
        try text.write(toFile: chartYaml, atomically: true, encoding: .utf8)
        let r = try run(["package", "\(dir)/\(chart)", "-d", dest])
        XCTAssertEqual(r.status, 0, r.stderr)
        return "\(dest)/\(chart)-\(version).tgz"
    }
}

/// `python3 -m http.server` on a free loopback port serving a directory.
final class StaticServer {
    let port: UInt16
    let proc: BackgroundProcess
    var url: String { "http://127.0.0.1:\(port)" }

    init(_ test: XCTestCase, directory: String, log: String) throws {
        port = freePort()
        proc = try BackgroundProcess(test, ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "\(port)"], logPath: log)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if (try? runCommand(["curl", "-s", "-o", "/dev/null", "\(url)/"], timeout: 5))?.status == 0 { return }
            usleep(50_000)
        }
        throw NSError(domain: "http.server", code: 1, userInfo: [NSLocalizedDescriptionKey: proc.log])
    }

    /// GET requests the server answered for a path.
    func gets(_ path: String) -> Int { proc.log.components(separatedBy: "\"GET \(path) ").count - 1 }
}
