import XCTest

/// The command line as a user meets it: exit codes and messages of the real binary.
final class CLITests: XCTestCase {
    func testHelpAndVersion() throws {
        let bin = try anchorageBinary()
        let help = try runCommand([bin, "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("serve"))
        XCTAssertTrue(help.stdout.contains("check-config"))
        let serveHelp = try runCommand([bin, "serve", "--help"])
        XCTAssertEqual(serveHelp.status, 0)
        XCTAssertTrue(serveHelp.stdout.contains("--config"))
        let version = try runCommand([bin, "--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("anchorage "))
    }

    func testUsageErrorsExit2() throws {
        let bin = try anchorageBinary()
        for args in [["frobnicate"], ["--frob"], ["serve", "--nope"], ["check-config", "--config"], ["check-config", "extra"], []] {
            let r = try runCommand([bin] + args)
            XCTAssertEqual(r.status, 2, "\(args)")
            XCTAssertTrue(r.stderr.contains("usage:"), "\(args): \(r.stderr)")
            if !args.isEmpty {
                XCTAssertTrue(r.stderr.hasPrefix("anchorage: "), r.stderr)
            }
        }
    }

    func testCheckConfig() throws {
        let bin = try anchorageBinary()
        let dir = TempDir(self)
        let good = dir.write("good.conf", "[cache]\nmax_size = 1GiB\n")
        let r = try runCommand([bin, "check-config", "--config", good])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("max_size = 1GiB"))
        XCTAssertTrue(r.stdout.contains("url = https://registry-1.docker.io"))

        let bad = dir.write("bad.conf", "[cache]\nmax_size = lots\n")
        let b = try runCommand([bin, "check-config", "--config", bad])
        XCTAssertEqual(b.status, 1)
        XCTAssertTrue(b.stderr.contains("bad.conf:2: invalid value 'lots' for 'max_size'"), b.stderr)

        let missing = try runCommand([bin, "check-config", "--config", dir.file("none.conf")])
        XCTAssertEqual(missing.status, 1)

        // A key an earlier version knew: accepted, with a warning naming its line.
        let old = dir.write("old.conf", "[cache]\nmax_size = 1GiB\nlarge_folios = auto\n")
        let o = try runCommand([bin, "check-config", "--config", old])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertTrue(o.stderr.contains("WARNING: \(old):3: key 'large_folios' in [cache] is no longer used"), o.stderr)
        XCTAssertFalse(o.stdout.contains("large_folios"), o.stdout)

        // Without --config: ./mirror.conf if present, else built-in defaults.
        let defaults = try runCommand([bin, "check-config"], cwd: dir.path)
        XCTAssertEqual(defaults.status, 0)
        XCTAssertTrue(defaults.stdout.contains("built-in defaults"))
        dir.write("mirror.conf", "[cache]\nmanifest_ttl = 7m\n")
        let local = try runCommand([bin, "check-config"], cwd: dir.path)
        XCTAssertTrue(local.stdout.contains("manifest_ttl = 7m"), local.stdout)
    }

    /// A cache path through a loop of symbolic links is named as such.
    func testServeNamesASymlinkLoopInTheCachePath() throws {
        let bin = try anchorageBinary()
        let dir = TempDir(self)
        XCTAssertEqual(symlink(dir.file("b"), dir.file("a")), 0)
        XCTAssertEqual(symlink(dir.file("a"), dir.file("b")), 0)
        let conf = dir.write("loop.conf", "[server]\nlisten = 127.0.0.1:0\n[cache]\npath = \(dir.file("a"))/cache\n")
        let r = try runCommand([bin, "serve", "--config", conf], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("loop of symbolic links"), r.stderr)
    }

    func testServeRefusesBadConfig() throws {
        let bin = try anchorageBinary()
        let dir = TempDir(self)
        let bad = dir.write("bad.conf", "[server]\nlisten = nowhere\n")
        let r = try runCommand([bin, "serve", "--config", bad], timeout: 20)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("bad.conf:2:"), r.stderr)
    }
}
