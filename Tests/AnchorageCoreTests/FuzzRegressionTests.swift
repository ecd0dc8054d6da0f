import Foundation
import XCTest
@testable import AnchorageCore

/// Every input the fuzzers (fuzz/run) ever crashed on, replayed against the
/// parser it broke: each must now be handled (accepted or refused) in bounded
/// time, not crash or hang.
final class FuzzRegressionTests: XCTestCase {
    private func inputs(_ target: String) throws -> [(String, [UInt8])] {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let dir = url.appendingPathComponent("fuzz/regressions/\(target)").path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().compactMap { n in FileManager.default.contents(atPath: "\(dir)/\(n)").map { (n, Array($0)) } }
    }

    func testIndexParserRegressions() throws {
        let cases = try inputs("index")
        XCTAssertFalse(cases.isEmpty, "the known index regression is present")
        for (name, bytes) in cases {
            let t0 = Date()
            if let idx = try? ChartIndex.parse(String(decoding: bytes, as: UTF8.self)) { _ = IndexRewriter.rewrite(idx, keepVersions: 2) }
            XCTAssertLessThan(Date().timeIntervalSince(t0), 2, name)
        }
        XCTAssertThrowsError(try YAMLParser.parse("a: [1}\n"))
        XCTAssertThrowsError(try YAMLParser.parse("a: {b: 1]\n"))
    }

    func testOtherParserRegressions() throws {
        for (name, bytes) in try inputs("http") {
            var p = HTTPRequestParser()
            _ = bytes.withUnsafeBytes { p.parse($0) }
            _ = name
        }
        for (_, bytes) in try inputs("config") { _ = try? Config.parse(String(decoding: bytes, as: UTF8.self), file: "f") }
        for (_, bytes) in try inputs("auth") { _ = AuthChallenge.parse(String(decoding: bytes, as: UTF8.self)) }
    }
}
