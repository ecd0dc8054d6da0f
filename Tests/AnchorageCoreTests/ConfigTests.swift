import Foundation
import XCTest
@testable import AnchorageCore

final class ConfigTests: XCTestCase {
    private func expectError(_ text: String, line: Int, contains: String, file: StaticString = #filePath, sourceLine: UInt = #line) {
        do {
            _ = try Config.parse(text, file: "t.conf")
            XCTFail("accepted:\n\(text)", file: file, line: sourceLine)
        } catch {
            XCTAssertEqual(error.file, "t.conf", file: file, line: sourceLine)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(error.message.contains(contains), "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(error.description.hasPrefix("t.conf:\(line): "), file: file, line: sourceLine)
        }
    }

    func testDefaults() throws {
        let c = try Config.parse("", file: "x")
        XCTAssertEqual(c.server.listen, [ListenAddress(host: "0.0.0.0", port: 5000)])
        XCTAssertEqual(c.cache.path, "./anchorage-cache")
        XCTAssertEqual(c.cache.maxSize, ByteSize(20 << 30))
        XCTAssertEqual(c.cache.manifestTTL, ConfigDuration(milliseconds: 300_000))
        XCTAssertEqual(c.defaultRegistry.name, "docker.io")
        XCTAssertEqual(c.defaultRegistry.url, "https://registry-1.docker.io")
    }

    func testFullSyntax() throws {
        let c = try Config.parse("""
        # comment
        ; another comment
        [server]
        listen = 0.0.0.0:5000          # trailing comment
        listen = [::]:5001 ; trailing
        listen = 127.0.0.1:5002
        [cache]
        path = "/var/cache/a #b"
        max_size = 512MB
        manifest_ttl = 90s
        [registry "docker.io"]
        url = https://registry-1.docker.io/
        [registry "ghcr.io"]
        url = https://ghcr.io
        default = true
        """, file: "x")
        XCTAssertEqual(c.server.listen.map(\.description), ["0.0.0.0:5000", "[::]:5001", "127.0.0.1:5002"])
        XCTAssertEqual(c.cache.path, "/var/cache/a #b")
        XCTAssertEqual(c.cache.maxSize.bytes, 512_000_000)
        XCTAssertEqual(c.cache.manifestTTL.milliseconds, 90_000)
        XCTAssertEqual(c.registries.map(\.name), ["docker.io", "ghcr.io"])
        XCTAssertEqual(c.registries[0].url, "https://registry-1.docker.io")
        XCTAssertEqual(c.defaultRegistry.name, "ghcr.io")
    }

    /// Keys and values an earlier version knew still start the daemon,
    /// with a warning naming the line, and change nothing.
    func testRetiredKeysWarnWithTheirLine() throws {
        let c = try Config.parse("[server]\nsendfile = auto\ncpu_affinity = off\n[cache]\nlarge_folios = true\n", file: "t.conf")
        XCTAssertTrue(c.server.sendfile)
        XCTAssertEqual(c.warnings.map(\.line), [2, 3, 5])
        XCTAssertTrue(c.warnings.allSatisfy { $0.file == "t.conf" })
        XCTAssertTrue(c.warnings[0].description.hasPrefix("t.conf:2: 'sendfile = auto' is no longer supported"), c.warnings[0].description)
        XCTAssertTrue(c.warnings[1].message.contains("'cpu_affinity'"), c.warnings[1].message)
        XCTAssertTrue(c.warnings[2].message.contains("'large_folios'"), c.warnings[2].message)
        XCTAssertEqual(try Config.parse("[server]\nsendfile = off\n", file: "t.conf").warnings, [])
        XCTAssertFalse(try Config.parse("[server]\nsendfile = off\n", file: "t.conf").server.sendfile)
    }

    func testEveryErrorKindNamesTheLine() {
        expectError("[server]\nbogus = 1\n", line: 2, contains: "unknown key 'bogus'")
        expectError("\n[nope]\n", line: 2, contains: "unknown section [nope]")
        expectError("[cache]\nmax_size = 12 parsecs\n", line: 2, contains: "invalid value")
        expectError("[cache]\nmanifest_ttl = 5 minutes\n", line: 2, contains: "expected a duration")
        expectError("[server]\nlisten = localhost:5000\n", line: 2, contains: "expected an address")
        expectError("[server]\nlisten = 1.2.3.4:99999\n", line: 2, contains: "invalid value")
        expectError("[server]\nsendfile = sometimes\n", line: 2, contains: "expected one of on, off")
        expectError("[cache]\npath = a\n\npath = b\n", line: 4, contains: "duplicate key 'path' (first set on line 2)")
        expectError("[server]\n[server]\n", line: 2, contains: "duplicate section")
        expectError("[registry \"a.io\"]\ndefault = true\n", line: 1, contains: "missing required key 'url'")
        expectError("[registry]\nurl = https://x\n", line: 1, contains: "needs a name")
        expectError("[cache \"x\"]\n", line: 1, contains: "takes no name")
        expectError("key = 1\n", line: 1, contains: "outside of any [section]")
        expectError("[server]\njust words\n", line: 2, contains: "expected 'key = value'")
        expectError("[server\n", line: 1, contains: "without ']'")
        expectError("[cache]\npath = \"open\n", line: 2, contains: "unterminated")
        expectError("[registry \"a.io\"]\nurl = ftp://x\n", line: 2, contains: "URL")
        expectError("[registry \"a.io\"]\n\nurl = http://user:s3cret@a.io/x\n", line: 3, contains: "must not carry credentials")
        XCTAssertThrowsError(try Config.parse("[registry \"a.io\"]\nurl = http://user:s3cret@a.io\n", file: "t")) { e in
            XCTAssertFalse("\(e)".contains("s3cret"), "the error never repeats the password: \(e)")
        }
        XCTAssertNoThrow(try Config.parse("[registry \"a.io\"]\nurl = https://a.io/path@v2\n", file: "t"), "an @ after the host is no credential")
        expectError("[charts \"c\"]\nurl = https://tok@charts.example/x\n", line: 2, contains: "set username and password_file")
        expectError("[registry \"a.io\"]\nurl = https://a\n[registry \"b.io\"]\nurl = https://b\n", line: 1, contains: "none has 'default = true'")
        expectError("[registry \"a.io\"]\nurl = https://a\ndefault = true\n[registry \"b.io\"]\nurl = https://b\ndefault = true\n", line: 1, contains: "more than one")
        expectError("[registry \"a.io\"]\nurl = https://a\n[registry \"a.io\"]\nurl = https://b\n", line: 3, contains: "duplicate section")
        expectError("[registry \"A/../x\"]\nurl = https://a\n", line: 1, contains: "invalid registry name")
        expectError("[registry \"a.io\"]\nurl = https://a\nusername = u\n", line: 3, contains: "needs password")
        expectError("[registry \"a.io\"]\nurl = https://a\npassword = p\n", line: 3, contains: "without username")
        expectError("[registry \"a.io\"]\nurl = https://a\nusername = u\npassword = p\npassword_file = /x\n", line: 5, contains: "not both")
        expectError("[registry \"a.io\"]\nurl = https://a\nusername = u\npassword_file = /nonexistent/pw\n", line: 4, contains: "cannot read")
        expectError("[registry \"a.io\"]\nurl = https://a\ntls_verify = maybe\n", line: 3, contains: "true or false")
        expectError("[server]\nworkers = 1000\n", line: 2, contains: "integer")
        expectError("[log]\nlevel = loud\n", line: 2, contains: "debug, info")
        expectError("[Server]\n", line: 1, contains: "invalid section header")
    }

    func testSizes() {
        XCTAssertEqual(ByteSize(parsing: "0")?.bytes, 0)
        XCTAssertEqual(ByteSize(parsing: "100B")?.bytes, 100)
        XCTAssertEqual(ByteSize(parsing: "1KB")?.bytes, 1000)
        XCTAssertEqual(ByteSize(parsing: "1KiB")?.bytes, 1024)
        XCTAssertEqual(ByteSize(parsing: "3MB")?.bytes, 3_000_000)
        XCTAssertEqual(ByteSize(parsing: "3MiB")?.bytes, 3 << 20)
        XCTAssertEqual(ByteSize(parsing: "20GiB")?.bytes, 20 << 30)
        XCTAssertEqual(ByteSize(parsing: "2TB")?.bytes, 2_000_000_000_000)
        XCTAssertEqual(ByteSize(parsing: "1TiB")?.bytes, 1 << 40)
        XCTAssertEqual(ByteSize(parsing: "1.5GiB")?.bytes, 3 << 29)
        XCTAssertNil(ByteSize(parsing: ""))
        XCTAssertNil(ByteSize(parsing: "GiB"))
        XCTAssertNil(ByteSize(parsing: "10 XB"))
        XCTAssertNil(ByteSize(parsing: "-1GB"))
        XCTAssertNil(ByteSize(parsing: "10gib"))
        XCTAssertNil(ByteSize(parsing: "99999999999TiB"))
        XCTAssertEqual(ByteSize(20 << 30).description, "20GiB")
        XCTAssertEqual(ByteSize(1000).description, "1000B")
    }

    func testDurations() {
        XCTAssertEqual(ConfigDuration(parsing: "250ms")?.milliseconds, 250)
        XCTAssertEqual(ConfigDuration(parsing: "30s")?.milliseconds, 30_000)
        XCTAssertEqual(ConfigDuration(parsing: "5m")?.milliseconds, 300_000)
        XCTAssertEqual(ConfigDuration(parsing: "6h")?.milliseconds, 21_600_000)
        XCTAssertEqual(ConfigDuration(parsing: "1d")?.milliseconds, 86_400_000)
        XCTAssertEqual(ConfigDuration(parsing: "0s")?.milliseconds, 0)
        XCTAssertNil(ConfigDuration(parsing: "5"))
        XCTAssertNil(ConfigDuration(parsing: "m"))
        XCTAssertNil(ConfigDuration(parsing: "1.5h"))
        XCTAssertNil(ConfigDuration(parsing: "-1s"))
        XCTAssertNil(ConfigDuration(parsing: "5 weeks"))
        XCTAssertEqual(ConfigDuration(milliseconds: 90_000).description, "90s")
        XCTAssertEqual(ConfigDuration(milliseconds: 1500).description, "1500ms")
    }

    private var exampleText: String {
        get throws {
            var url = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { url.deleteLastPathComponent() }
            return try String(contentsOf: url.appendingPathComponent("mirror.conf.example"), encoding: .utf8)
        }
    }

    /// The example parses, equals the built-in defaults, and documents every key.
    func testExampleDocumentsEveryKeyAndEqualsDefaults() throws {
        let text = try exampleText
        let fromExample = try Config.parse(text, file: "mirror.conf.example")
        let defaults = try Config.parse("", file: "defaults")
        XCTAssertEqual(fromExample.render().split(separator: "\n").dropFirst(), defaults.render().split(separator: "\n").dropFirst())
        for schema in Config.schemas {
            let header = schema.named ? "[\(schema.kind) \"" : "[\(schema.kind)]"
            XCTAssertTrue(text.contains(header), "example lacks section \(header)")
            for key in schema.keys {
                let documented = text.split(separator: "\n").contains { line in
                    var l = line.trimmingCharacters(in: .whitespaces)
                    if l.hasPrefix("#") { l = String(l.dropFirst()).trimmingCharacters(in: .whitespaces) }
                    return l.hasPrefix("\(key.name) =")
                }
                XCTAssertTrue(documented, "mirror.conf.example does not document [\(schema.kind)] \(key.name)")
            }
        }
    }

    func testRenderRedactsPasswords() throws {
        let c = try Config.parse("[registry \"a.io\"]\nurl = https://a\nusername = u\npassword = hunter2\n", file: "x")
        XCTAssertFalse(c.render().contains("hunter2"))
        XCTAssertTrue(c.render().contains("password = <redacted>"))
    }
}
