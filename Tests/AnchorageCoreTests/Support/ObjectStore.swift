import Foundation
import XCTest

/// A real S3-compatible object store for the tests: SeaweedFS (`weed mini`,
/// installed by scripts/test), on 127.0.0.1 with SigV4 checked against
/// `accessKey`/`secretKey`. It listens on fixed ports (S3 on 8333), so one
/// runs at a time; `stop` waits until it is gone.
final class SeaweedStore {
    let dir: TempDir
    let test: XCTestCase
    let accessKey = "AKANCHORAGETEST0001"
    let secretKey = "anchorage/test+secret/0123456789abcdefghij"
    let endpoint = "http://127.0.0.1:8333"
    private(set) var proc: BackgroundProcess?

    /// Started, with `bucket` created when given.
    init(_ test: XCTestCase, bucket: String? = nil) throws {
        self.test = test
        dir = TempDir(test, "seaweed")
        dir.write("s3.json", """
        {"identities":[{"name":"anchorage","credentials":[{"accessKey":"\(accessKey)","secretKey":"\(secretKey)"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
        """)
        try FileManager.default.createDirectory(atPath: dir.file("data"), withIntermediateDirectories: true)
        try start()
        if let bucket { try createBucket(bucket) }
    }

    static func binary() throws -> String {
        try checkoutProgram(env: "ANCHORAGE_WEED", ".build-tools/weed", name: "SeaweedFS (weed)")
    }

    /// Starts (or restarts, on the same data) and waits until S3 answers.
    func start() throws {
        let p = try BackgroundProcess(test, [try SeaweedStore.binary(), "mini", "-dir=\(dir.file("data"))", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                             "-s3.config=\(dir.file("s3.json"))", "-admin.ui=false"],
                                      logPath: dir.file("weed-\(UUID().uuidString.prefix(6)).log"), cwd: dir.path)
        proc = p
        let up = eventually("S3 answers") {
            guard p.process.isRunning else { return false }
            return (try? s3(["-o", "/dev/null", "-w", "%{http_code}", "\(endpoint)/"]).stdout) == "200"
        }
        guard up else {
            throw NSError(domain: "seaweed", code: 1, userInfo: [NSLocalizedDescriptionKey: "SeaweedFS did not start:\n\(p.log.suffix(3000))"])
        }
    }

    /// SIGTERM and wait until it exited (it takes ~12 s).
    func stop() { proc?.stop(timeout: 40) }

    /// curl signing with the store's credentials (S3 needs the payload hash header).
    func s3(_ args: [String], secret: String? = nil) throws -> RunResult {
        try runCommand(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "\(accessKey):\(secret ?? secretKey)",
                        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"] + args, timeout: 60)
    }

    func createBucket(_ name: String) throws {
        let r = try s3(["-X", "PUT", "-o", "/dev/null", "-w", "%{http_code}", "\(endpoint)/\(name)"])
        XCTAssertEqual(r.stdout, "200", r.stderr)
    }

    /// The HTTP status of a HEAD of `key` in `bucket`.
    func headStatus(_ bucket: String, _ key: String) -> String {
        (try? s3(["-I", "-o", "/dev/null", "-w", "%{http_code}", "\(endpoint)/\(bucket)/\(key)"]).stdout) ?? "error"
    }

    /// The `[storage]` section for a node using `bucket`.
    func storageSection(bucket: String, prefix: String = "", secret: String? = nil) -> String {
        let ak = dir.write("access-key", accessKey)
        let sk = dir.write("secret-key-\(UUID().uuidString.prefix(6))", secret ?? secretKey)
        return """
        [storage]
        backend = s3
        endpoint = \(endpoint)
        bucket = \(bucket)
        prefix = \(prefix)
        access_key_file = \(ak)
        secret_key_file = \(sk)
        """
    }
}
