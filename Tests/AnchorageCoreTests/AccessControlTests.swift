import Foundation
import XCTest
@testable import AnchorageCore

final class AccessControlTests: XCTestCase {
    func testAddressRanges() throws {
        let v4 = try XCTUnwrap(AddressRange("10.1.0.0/16"))
        XCTAssertTrue(v4.contains(PeerAddress(bytes: [10, 1, 200, 3], port: 0)))
        XCTAssertFalse(v4.contains(PeerAddress(bytes: [10, 2, 0, 1], port: 0)))
        // IPv4-mapped IPv6 peers match IPv4 ranges.
        XCTAssertTrue(v4.contains(PeerAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 9], port: 0)))
        let v6 = try XCTUnwrap(AddressRange("fd00::/8"))
        XCTAssertTrue(v6.contains(PeerAddress(bytes: [0xfd] + Array(repeating: 1, count: 15), port: 0)))
        XCTAssertFalse(v6.contains(PeerAddress(bytes: [10, 1, 0, 1], port: 0)))
        XCTAssertTrue(AddressRange("127.0.0.1")!.contains(PeerAddress(bytes: [127, 0, 0, 1], port: 0)))
        XCTAssertTrue(AddressRange("0.0.0.0/0")!.contains(PeerAddress(bytes: [1, 2, 3, 4], port: 0)))
        XCTAssertTrue(AddressRange("10.1.2.3/12")!.contains(PeerAddress(bytes: [10, 15, 0, 0], port: 0)), "host bits ignored")
        for bad in ["10.0.0.0/33", "10.0.0/8", "example.com", "::/129", "10.0.0.0/x", ""] { XCTAssertNil(AddressRange(bad), bad) }
    }

    func testAllowList() throws {
        let denied = try AnchorageServer(self, serverKeys: "allow = 10.0.0.0/8\nallow = fd00::/8\n")
        let r = try curl(["-w", "\n%{http_code}", "\(denied.base)/v2/"]).stdout
        XCTAssertTrue(r.hasSuffix("\n403") && r.contains("\"DENIED\""), r)
        XCTAssertTrue(try curl(["-w", "%{http_code}", "-o", "/dev/null", "\(denied.base)/healthz"]).stdout == "403", "the allow list covers every path")
        let allowed = try AnchorageServer(self, serverKeys: "allow = 127.0.0.0/8\n")
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(allowed.base)/v2/"]).stdout, "200")
        let badConf = try runCommand([try anchorageBinary(), "check-config", "--config", TempDir(self).write("c.conf", "[server]\nallow = 10.0.0.0/40\n")])
        XCTAssertEqual(badConf.status, 1)
        XCTAssertTrue(badConf.stderr.contains("c.conf:2:"), badConf.stderr)
    }

    func testBasicAuthWithRealClientsAndRateLimit() throws {
        let dir = TempDir(self)
        let htpasswd = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", htpasswd, "alice", "wonder land"]).status, 0)
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 1)
        let m = try AnchorageServer(self, config: "[auth]\nhtpasswd = \(htpasswd)\nfailure_limit = 3\n[registry \"up.test\"]\nurl = \(up.url)\n", dir: dir)

        let anon = try curl(["-D", "-", "\(m.base)/v2/"]).stdout
        XCTAssertTrue(anon.hasPrefix("HTTP/1.1 401"), anon)
        XCTAssertTrue(anon.contains("WWW-Authenticate: Basic realm=\"anchorage\""), anon)
        XCTAssertTrue(anon.contains("\"UNAUTHORIZED\""), anon)
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(m.base)/healthz"]).stdout, "200", "probes stay open")
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:wonder land", "\(m.base)/v2/"]).stdout, "200")

        // skopeo answers the Basic challenge with its own credentials.
        let noCreds = try runCommand(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(m.port)/team/app:v1"], timeout: 60)
        XCTAssertNotEqual(noCreds.status, 0)
        let pulled = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "alice:wonder land",
                                     "docker://127.0.0.1:\(m.port)/team/app:v1", "dir:\(dir.file("pulled"))"], timeout: 120)
        XCTAssertEqual(pulled.status, 0, pulled.stderr)

        XCTAssertFalse(m.log.contains("wonder land"), "passwords never logged")

        // Failed logins from one address (skopeo's empty-credential retries
        // above count too, so a fresh server): after the limit, 429 even for
        // good credentials.
        let fresh = try AnchorageServer(self, config: "[auth]\nhtpasswd = \(htpasswd)\nfailure_limit = 3\n")
        for _ in 0..<3 {
            XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:guess", "\(fresh.base)/v2/"]).stdout, "401")
        }
        let limited = try curl(["-D", "-", "-o", "/dev/null", "-u", "alice:wonder land", "\(fresh.base)/v2/"]).stdout
        XCTAssertTrue(limited.hasPrefix("HTTP/1.1 429") && limited.contains("Retry-After: 60"), limited)
    }

    func testHelmWithCredentials() throws {
        let helm = try Helm(self)
        let dir = TempDir(self)
        let htpasswd = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", htpasswd, "ci", "p4ss"]).status, 0)
        let repo = dir.file("repo")
        _ = try helm.package(chart: "delta", version: "1.0.0", in: dir.path, dest: repo)
        XCTAssertEqual(try helm.run(["repo", "index", repo]).status, 0)
        let charts = try StaticServer(self, directory: repo, log: dir.file("http.log"))
        let m = try AnchorageServer(self, config: "[auth]\nhtpasswd = \(htpasswd)\n[charts \"c\"]\nurl = \(charts.url)\n", dir: dir)
        XCTAssertNotEqual(try helm.run(["repo", "add", "nope", "\(m.base)/charts/c"]).status, 0)
        XCTAssertEqual(try helm.run(["repo", "add", "mirror", "\(m.base)/charts/c", "--username", "ci", "--password", "p4ss"]).status, 0)
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let pull = try helm.run(["pull", "mirror/delta", "-d", out])
        XCTAssertEqual(pull.status, 0, pull.stderr)
    }

    func testExposedUpstreamCredentialsAreWarnedAbout() throws {
        let dir = TempDir(self)
        let htpasswd = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", htpasswd, "u", "p"]).status, 0)
        let exposed = dir.write("a.conf", "[registry \"private.io\"]\nurl = https://private.io\nusername = robot\npassword = hunter2\n")
        let r = try runCommand([try anchorageBinary(), "check-config", "--config", exposed])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("WARNING") && r.stderr.contains("private.io"), r.stderr)
        XCTAssertFalse(r.stdout.contains("hunter2") || r.stderr.contains("hunter2"))
        let guarded = dir.write("b.conf", "[auth]\nhtpasswd = \(htpasswd)\n[registry \"private.io\"]\nurl = https://private.io\nusername = robot\npassword = hunter2\n")
        XCTAssertFalse(try runCommand([try anchorageBinary(), "check-config", "--config", guarded]).stderr.contains("WARNING"))
        let bad = dir.write("bad.htpasswd", "u:$apr1$abc$def\n")
        let b = try runCommand([try anchorageBinary(), "check-config", "--config", dir.write("c.conf", "[auth]\nhtpasswd = \(bad)\n")])
        XCTAssertEqual(b.status, 1)
        XCTAssertTrue(b.stderr.contains("bad.htpasswd:1: only bcrypt"), b.stderr)
    }
}
