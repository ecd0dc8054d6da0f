import Foundation
import XCTest
@testable import AnchorageCore

final class BcryptTests: XCTestCase {
    /// Published vectors (OpenBSD / John the Ripper), cross-checked with libxcrypt.
    func testPublishedVectors() {
        let vectors = [
            ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
            ("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"),
            ("U*U*U", "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a"),
            ("", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"),
        ]
        for (pw, hash) in vectors {
            XCTAssertTrue(Bcrypt.verify(pw, hash: hash), "\(pw)")
            XCTAssertFalse(Bcrypt.verify(pw + "x", hash: hash), "\(pw)x")
        }
        XCTAssertFalse(Bcrypt.verify("U*U", hash: "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"), "the buggy $2x$ variant is refused")
        XCTAssertFalse(Bcrypt.verify("U*U", hash: "$2a$05$short"))
        XCTAssertFalse(Bcrypt.verify("U*U", hash: "$apr1$abc$def"))
    }

    /// Hashes written by the real `htpasswd -B` (apache2-utils).
    func testHtpasswdOutput() throws {
        let dir = TempDir(self)
        let file = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", file, "alice", "correct horse"]).status, 0)
        XCTAssertEqual(try runCommand(["htpasswd", "-Bb", "-C", "6", file, "bob", "s3cr3t:with:colons"]).status, 0)
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        let alice = String(lines[0].split(separator: ":", maxSplits: 1)[1]), bob = String(lines[1].split(separator: ":", maxSplits: 1)[1])
        XCTAssertTrue(Bcrypt.verify("correct horse", hash: alice))
        XCTAssertFalse(Bcrypt.verify("correct horsE", hash: alice))
        XCTAssertTrue(Bcrypt.verify("s3cr3t:with:colons", hash: bob))
    }

    /// The Blowfish table really is π: digits re-derived with the BBP formula.
    /// A login for an unknown user runs one bcrypt of the file's highest
    /// cost, like a known user's wrong password, so its timing does not
    /// tell which user names exist; a password that matches the decoy
    /// still admits no one.
    func testUnknownUsersCostABcryptToo() throws {
        let dir = TempDir(self)
        let file = dir.file("htpasswd")
        XCTAssertEqual(try runCommand(["htpasswd", "-Bbc", "-C", "5", file, "alice", "a"]).status, 0)
        XCTAssertEqual(try runCommand(["htpasswd", "-Bb", "-C", "7", file, "bob", "b"]).status, 0)
        let htpasswd = try Htpasswd.load(file)
        let gate = AccessGate(allow: [], htpasswd: htpasswd, failureLimit: 10)
        let decoy = gate.storedHash(for: "mallory")
        XCTAssertEqual(decoy, htpasswd.users["bob"], "the costliest entry")
        XCTAssertEqual(decoy.dropFirst(4).prefix(2), "07")
        XCTAssertEqual(gate.storedHash(for: "alice"), htpasswd.users["alice"])
        XCTAssertTrue(Bcrypt.verify("b", hash: decoy), "a real hash, so the check costs a full bcrypt")
    }

    func testBlowfishConstantsAreThePiDigits() {
        func bbpHexDigit(_ n: Int) -> UInt32 {
            // The (n+1)-th hexadecimal digit of π after the point.
            func series(_ j: Int) -> Double {
                var s = 0.0
                for k in 0...n {
                    let denom = 8 * k + j
                    var r = 1, b = 16 % denom, e = n - k
                    while e > 0 { if e & 1 == 1 { r = r * b % denom }; b = b * b % denom; e >>= 1 }
                    s += Double(r) / Double(denom)
                    s -= s.rounded(.down)
                }
                var k = n + 1, t = 1.0 / 16
                while t > 1e-17 { s += t / Double(8 * k + j); t /= 16; k += 1 }
                return s - s.rounded(.down)
            }
            var x = 4 * series(1) - 2 * series(4) - series(5) - series(6)
            x -= x.rounded(.down)
            return UInt32(x * 16)
        }
        func word(_ index: Int) -> UInt32 { (0..<8).reduce(0) { $0 << 4 | bbpHexDigit(index * 8 + $1) } }
        XCTAssertEqual(word(0), BlowfishConstants.p[0])
        XCTAssertEqual(word(17), BlowfishConstants.p[17])
        XCTAssertEqual(word(18 + 500), BlowfishConstants.s[500])
        XCTAssertEqual(word(18 + 1023), BlowfishConstants.s[1023])
    }
}
