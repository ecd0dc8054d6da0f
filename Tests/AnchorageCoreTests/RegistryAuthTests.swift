import Foundation
import XCTest

/// The registry token flow against a `docker-registry` with `auth: token`
/// and a token server of our own, as Docker Hub does it.
final class RegistryAuthTests: XCTestCase {
    private func tokenSetup(user: String?) throws -> (UpstreamRegistry, BackgroundProcess) {
        let dir = TempDir(self, "token")
        let tport = freePort()
        var args = ["/usr/bin/python3", testbenchScript("token_server.py"), dir.path, "\(tport)"]
        if let user { args += ["--user", user] }
        let ts = try BackgroundProcess(self, args, logPath: dir.file("token.log"))
        XCTAssertTrue(ts.waitForLog("token server ready"), ts.log)
        let up = try UpstreamRegistry(self, extraYAML: """
        auth:
          token:
            realm: http://127.0.0.1:\(tport)/token
            service: anchorage-test-registry
            issuer: anchorage-test-issuer
            rootcertbundle: \(dir.file("cert.pem"))
        """)
        return (up, ts)
    }

    private func push(_ up: UpstreamRegistry, creds: String?) throws {
        let layout = up.dir.file("img")
        XCTAssertEqual(try runCommand(["python3", testbenchScript("make_oci_image.py"), layout, "--tag", "v1", "--layers", "2"]).status, 0)
        var args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if let creds { args += ["--dest-creds", creds] }
        let r = try runCommand(args + ["oci:\(layout):v1", "docker://\(up.host)/private/app:v1"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testAnonymousTokenFlow() throws {
        let (up, ts) = try tokenSetup(user: nil)
        try push(up, creds: nil)
        // The upstream really demands a token.
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(up.url)/v2/private/app/manifests/v1"]).stdout, "401")
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        let out = m.dir.file("pulled")
        let r = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://127.0.0.1:\(m.port)/private/app:v1", "dir:\(out)"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(ts.log.contains("scope=repository%3Aprivate%2Fapp%3Apull") || ts.log.contains("scope=repository:private/app:pull"), ts.log)
        // Tokens are cached per scope: far fewer token requests than upstream requests.
        let tokenRequests = ts.log.components(separatedBy: "token-request").count - 1
        XCTAssertLessThanOrEqual(tokenRequests, 2, ts.log)
    }

    func testCredentialsAreSentToTheTokenRealm() throws {
        let (up, ts) = try tokenSetup(user: "robot:s3cret")
        try push(up, creds: "robot:s3cret")
        let dir = TempDir(self)
        let pw = dir.write("pw", "s3cret\n")
        let m = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\nusername = robot\npassword_file = \(pw)\n", dir: dir)
        let accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]
        XCTAssertEqual(try curl(accept + ["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/v2/private/app/manifests/v1"]).stdout, "200")
        XCTAssertFalse(m.log.contains("s3cret"), "credentials never logged")

        // Without credentials the mirror gets no token: a clear DENIED error.
        let anon = try AnchorageServer(self, config: "[registry \"up.test\"]\nurl = \(up.url)\n")
        let denied = try curl(accept + ["-w", "\n%{http_code}", "\(anon.base)/v2/private/app/manifests/v1"]).stdout
        XCTAssertTrue(denied.hasSuffix("\n403"), denied)
        XCTAssertTrue(denied.contains("\"DENIED\""), denied)
        _ = ts
    }
}
