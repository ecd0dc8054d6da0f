import Foundation
import XCTest
@testable import AnchorageCore

/// `[cache] large_folios` and the free-page-reporting probe `auto` keys on.
final class LargeFolioPolicyTests: XCTestCase {
    func testConfigWords() throws {
        XCTAssertEqual(try Config.parse("", file: "x").cache.largeFolios, .auto)
        for (word, policy) in [("auto", LargeFolioPolicy.auto), ("true", .on), ("yes", .on), ("on", .on),
                               ("false", .off), ("no", .off), ("off", .off)] {
            let c = try Config.parse("[cache]\nlarge_folios = \(word)\n", file: "x")
            XCTAssertEqual(c.cache.largeFolios, policy, word)
        }
        XCTAssertThrowsError(try Config.parse("[cache]\nlarge_folios = sometimes\n", file: "x")) { error in
            XCTAssertTrue("\(error)".contains("large_folios"), "\(error)")
        }
        let rendered = try Config.parse("[cache]\nlarge_folios = yes\n", file: "x").cache.render()
        XCTAssertTrue(rendered.contains { $0 == ("large_folios", "true") }, "\(rendered)")
    }

    func testAutoWritesSmallStepsOnlyWhereFreePagesAreReported() {
        XCTAssertTrue(LargeFolioPolicy.auto.writesWholeBlocks(freePageReporting: false))
        XCTAssertFalse(LargeFolioPolicy.auto.writesWholeBlocks(freePageReporting: true))
        for reporting in [false, true] {
            XCTAssertTrue(LargeFolioPolicy.on.writesWholeBlocks(freePageReporting: reporting))
            XCTAssertFalse(LargeFolioPolicy.off.writesWholeBlocks(freePageReporting: reporting))
        }
    }

    /// Bit 5 of the balloon's negotiated features, bit 0 first; this is
    /// the string a 6.18 kernel showed on the 2-core test VM.
    func testFeatureBits() {
        XCTAssertTrue(FreePageReporting.reports(features: "01100101000000000000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n"))
        XCTAssertFalse(FreePageReporting.reports(features: "01100001000000000000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\n"))
        XCTAssertTrue(FreePageReporting.reports(features: "000001"))
        XCTAssertFalse(FreePageReporting.reports(features: "00000"), "too short to say")
        XCTAssertFalse(FreePageReporting.reports(features: ""))
    }

    /// The probe reads every balloon device's `features` under the driver's
    /// directory (a copy of sysfs's layout here) and says no when it cannot.
    func testProbeReadsTheDriversDevices() throws {
        let dir = TempDir(self, "balloon")
        let driver = dir.file("virtio_balloon")
        XCTAssertFalse(FreePageReporting.isActive(driverDirectory: driver), "no driver")
        try FileManager.default.createDirectory(atPath: "\(driver)/virtio3", withIntermediateDirectories: true)
        XCTAssertFalse(FreePageReporting.isActive(driverDirectory: driver), "no features file")
        try "0110000100\n".write(toFile: "\(driver)/virtio3/features", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(driver)/module", withIntermediateDirectories: true)
        try "0000010000\n".write(toFile: "\(driver)/module/features", atomically: true, encoding: .utf8)
        XCTAssertFalse(FreePageReporting.isActive(driverDirectory: driver), "only virtio* entries are devices")
        try "0110010100\n".write(toFile: "\(driver)/virtio3/features", atomically: true, encoding: .utf8)
        XCTAssertTrue(FreePageReporting.isActive(driverDirectory: driver))
    }
}
