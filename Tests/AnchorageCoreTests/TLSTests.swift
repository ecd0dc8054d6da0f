import Foundation
import Glibc
import XCTest

/// HTTPS with OpenSSL on the same event loop.
final class TLSTests: XCTestCase {
    private func makeCert(_ dir: TempDir, _ name: String) throws {
        let r = try runCommand(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                                "-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).crt"),
                                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testHTTPSServesPullsAndReloadsOnSIGHUP() throws {
        let dir = TempDir(self)
        try makeCert(dir, "one")
        try makeCert(dir, "two")
        try FileManager.default.copyItem(atPath: dir.file("one.crt"), toPath: dir.file("tls.crt"))
        try FileManager.default.copyItem(atPath: dir.file("one.key"), toPath: dir.file("tls.key"))
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 3_000_000)
        let m = try AnchorageServer(self, serverKeys: "tls_listen = 127.0.0.1:0\ntls_cert = \(dir.file("tls.crt"))\ntls_key = \(dir.file("tls.key"))\n",
                                    config: "[registry \"up.test\"]\nurl = \(up.url)\n", dir: dir)
        let port = try tlsPort(m)
        let base = "https://127.0.0.1:\(port)"

        // Keep-alive over TLS; a cold (streamed) and a warm (file) blob, byte-exact.
        let r = try curl(["-v", "--cacert", dir.file("one.crt"), "\(base)/v2/", "\(base)/healthz"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Re-using existing connection"), r.stderr)
        XCTAssertTrue(r.stderr.contains("TLSv1.3") || r.stderr.contains("TLSv1.2"), r.stderr)
        let manifest = try curl(["--cacert", dir.file("one.crt"), "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(base)/v2/team/app/manifests/v1"]).stdout
        let layer = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])?["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        for _ in 0..<2 {
            let sum = try runCommand(["bash", "-c", "curl -sS --fail --cacert \(dir.file("one.crt")) \(base)/v2/team/app/blobs/\(layer) | sha256sum"])
            XCTAssertTrue(sum.stdout.hasPrefix(String(layer.dropFirst(7))), sum.stdout + sum.stderr)
        }
        // Old protocol versions are refused, and so are TLS 1.2 suites
        // without forward secrecy or with CBC; the AEAD ones are taken.
        XCTAssertNotEqual(try curl(["--cacert", dir.file("one.crt"), "--tls-max", "1.1", "\(base)/v2/"]).status, 0)
        for weak in ["AES256-SHA256", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"] {
            let r = try runCommand(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2", "-cipher", weak], stdin: "")
            XCTAssertNotEqual(r.status, 0, "\(weak) was accepted: \(r.stdout.suffix(400))")
        }
        for strong in ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"] {
            let r = try runCommand(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2", "-cipher", strong], stdin: "")
            XCTAssertEqual(r.status, 0, "\(strong) was refused: \(r.stderr.suffix(400))")
        }
        // A real client over HTTPS.
        let certs = dir.file("certs.d")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir.file("one.crt"), toPath: "\(certs)/ca.crt")
        let sk = try runCommand(["skopeo", "copy", "--quiet", "--src-cert-dir", certs, "docker://127.0.0.1:\(port)/team/app:v1", "dir:\(dir.file("pulled"))"], timeout: 120)
        XCTAssertEqual(sk.status, 0, sk.stderr)
        // Plain HTTP stays available on `listen`.
        XCTAssertEqual(try curl(["\(m.base)/healthz"]).stdout, "ok\n")

        // SIGHUP: a new certificate for new connections.
        try? FileManager.default.removeItem(atPath: dir.file("tls.crt"))
        try? FileManager.default.removeItem(atPath: dir.file("tls.key"))
        try FileManager.default.copyItem(atPath: dir.file("two.crt"), toPath: dir.file("tls.crt"))
        try FileManager.default.copyItem(atPath: dir.file("two.key"), toPath: dir.file("tls.key"))
        kill(m.proc.process.processIdentifier, SIGHUP)
        XCTAssertTrue(m.proc.waitForLog("TLS certificate reloaded", timeout: 10), m.log)
        XCTAssertEqual(try curl(["--cacert", dir.file("two.crt"), "\(base)/healthz"]).stdout, "ok\n")
        XCTAssertNotEqual(try curl(["--cacert", dir.file("one.crt"), "\(base)/healthz"]).status, 0)
    }

    /// The port of the TLS listener, once the daemon has logged it (after the plain one).
    private func tlsPort(_ m: AnchorageServer) throws -> Substring {
        XCTAssertTrue(m.proc.waitForLog("tls=true"), m.log)
        let line = try XCTUnwrap(m.log.split(separator: "\n").first { $0.contains("tls=true") })
        return try XCTUnwrap(line.split(separator: " ").first { $0.hasPrefix("addr=") }?.split(separator: ":").last)
    }

    private func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Clients that start TLS handshakes and never finish them hold at most
    /// `TLSContext.maxHandshakes` of them at once; when they are gone, the
    /// memory goes back to the system, and TLS clients are served as before.
    func testHalfOpenHandshakesAreBoundedAndTheirMemoryReturned() throws {
        let dir = TempDir(self)
        try makeCert(dir, "tls")
        let m = try AnchorageServer(self, serverKeys: "tls_listen = 127.0.0.1:0\ntls_cert = \(dir.file("tls.crt"))\ntls_key = \(dir.file("tls.key"))\nheader_timeout = 10m\n", dir: dir)
        let port = try tlsPort(m)
        let pid = m.proc.process.processIdentifier
        XCTAssertEqual(try curl(["-k", "https://127.0.0.1:\(port)/healthz"]).stdout, "ok\n")
        let before = rssKiB(pid)
        func handshakes() -> Int {
            let s = (try? curl(["\(m.base)/api/status"]).stdout) ?? ""
            return ((try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any])?["tls_handshakes_in_progress"] as? Int ?? -1
        }
        // Every connection is in the server's hands once the listen queue is empty.
        func acceptQueueEmpty() -> Bool {
            let ss = (try? runCommand(["ss", "-Hltn", "sport = :\(port)"]).stdout) ?? ""
            return ss.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "0"
        }
        let clients = try BackgroundProcess(self, ["python3", testbenchScript("tls_half_open.py"), String(port), "5000"], logPath: dir.file("half-open.log"))
        XCTAssertTrue(clients.waitForLog("opened 5000", timeout: 300), clients.log)
        var drained = false
        for _ in 0..<600 where !drained {
            drained = acceptQueueEmpty()
            if !drained { usleep(100_000) }
        }
        XCTAssertTrue(drained)
        let held = handshakes()
        let during = rssKiB(pid)
        print("half-open handshakes: \(held) held of 5000; RSS \(before) KiB before, \(during) KiB with them")
        XCTAssertLessThanOrEqual(held, 1024, "at most maxHandshakes are held")
        XCTAssertGreaterThan(held, 0)
        XCTAssertLessThan(during - before, 100 * 1024, "memory is bounded")
        _ = clients.stop()
        var left = held
        for _ in 0..<600 where left > 0 {
            usleep(100_000)
            left = handshakes()
        }
        XCTAssertEqual(left, 0, "every half-open connection was closed")
        let after = rssKiB(pid)
        print("RSS \(after) KiB after they closed")
        XCTAssertLessThan(after - before, 20 * 1024, "their memory went back to the system")
        XCTAssertEqual(try curl(["-k", "https://127.0.0.1:\(port)/healthz"]).stdout, "ok\n")
    }

    /// The console's session cookie carries `Secure` when it was set over TLS.
    func testConsoleSessionCookieIsSecureOverTLSOnly() throws {
        let dir = TempDir(self)
        try makeCert(dir, "tls")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", dir.file("htpasswd"), "alice", "pw-a"]).status, 0)
        let m = try AnchorageServer(self, serverKeys: "tls_listen = 127.0.0.1:0\ntls_cert = \(dir.file("tls.crt"))\ntls_key = \(dir.file("tls.key"))\n",
                                    config: "[auth]\nhtpasswd = \(dir.file("htpasswd"))\n", dir: dir)
        let port = try tlsPort(m)
        let login = ["-s", "-i", "-H", "Content-Type: application/json", "-d", #"{"user":"alice","password":"pw-a"}"#]
        let overTLS = try curl(login + ["--cacert", dir.file("tls.crt"), "https://127.0.0.1:\(port)/api/session"]).stdout
        XCTAssertTrue(overTLS.contains("anchorage_session=") && overTLS.contains("; Secure"), overTLS)
        let plain = try curl(login + ["\(m.base)/api/session"]).stdout
        XCTAssertTrue(plain.contains("anchorage_session=") && !plain.contains("Secure"), plain)
    }

    func testBadCertificateIsAConfigError() throws {
        let dir = TempDir(self)
        let conf = dir.write("c.conf", "[server]\ntls_listen = 127.0.0.1:0\ntls_cert = \(dir.write("bad.crt", "not a cert"))\ntls_key = \(dir.write("bad.key", "nope"))\n")
        let r = try runCommand([try anchorageBinary(), "check-config", "--config", conf])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("c.conf:3:") && r.stderr.contains("certificate"), r.stderr)
        let missing = try runCommand([try anchorageBinary(), "check-config", "--config", dir.write("d.conf", "[server]\ntls_listen = 127.0.0.1:0\n")])
        XCTAssertTrue(missing.stderr.contains("needs tls_cert and tls_key"), missing.stderr)
    }
}
