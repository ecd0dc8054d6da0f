import Foundation
import XCTest
@testable import AnchorageCore

final class ChartIndexTests: XCTestCase {
    static let helmStyle = """
    apiVersion: v1
    entries:
      alpine:
      - apiVersion: v2
        appVersion: 1.16.0
        created: "2026-01-01T00:00:00.000000000Z"
        description: A Helm chart for Kubernetes with a description long enough
          that yaml.v2 folds it onto a second line
        digest: 515c6a7f9e13bcb9e4e2e38a0e1a5a3c8bde9ad0b1a1d0d9cc2e6b2a7c2d8e11
        name: alpine
        type: application
        urls:
        - https://charts.example.com/alpine-0.2.0.tgz
        version: 0.2.0
      - apiVersion: v2
        digest: sha256:615c6a7f9e13bcb9e4e2e38a0e1a5a3c8bde9ad0b1a1d0d9cc2e6b2a7c2d8e11
        name: alpine
        urls:
        - alpine-0.1.0.tgz
        version: 0.1.0
      nginx:
        - name: nginx   # indented sequence style
          version: "1.2.3-rc.1"
          annotations:
            note: |
              line one
              line two
            folded: >-
              a
              b
          urls: [ "https://x.example/nginx-1.2.3-rc.1.tgz", 'mirror/nginx.tgz' ]
          keywords: [web, "proxy"]
    generated: "2026-01-01T00:00:00Z"
    serverInfo: {contextPath: /api}
    """

    func testParsesHelmShapes() throws {
        let idx = try ChartIndex.parse(Self.helmStyle)
        XCTAssertEqual(idx.format, .yaml)
        XCTAssertEqual(idx.entries.map(\.fileName), ["alpine-0.2.0.tgz", "alpine-0.1.0.tgz", "nginx-1.2.3-rc.1.tgz"])
        XCTAssertEqual(idx.entries[0].urls, ["https://charts.example.com/alpine-0.2.0.tgz"])
        XCTAssertEqual(idx.entries[0].digest?.hex, "515c6a7f9e13bcb9e4e2e38a0e1a5a3c8bde9ad0b1a1d0d9cc2e6b2a7c2d8e11")
        XCTAssertEqual(idx.entries[1].digest?.hex, "615c6a7f9e13bcb9e4e2e38a0e1a5a3c8bde9ad0b1a1d0d9cc2e6b2a7c2d8e11")
        XCTAssertEqual(idx.entries[2].urls, ["https://x.example/nginx-1.2.3-rc.1.tgz", "mirror/nginx.tgz"])
        XCTAssertNil(idx.entries[2].digest)
        let root = try YAMLParser.parse(Self.helmStyle)
        let alpine = try XCTUnwrap(root["entries"]?["alpine"]?.items?.first)
        XCTAssertEqual(alpine["description"]?.string, "A Helm chart for Kubernetes with a description long enough that yaml.v2 folds it onto a second line")
        let nginx = try XCTUnwrap(root["entries"]?["nginx"]?.items?.first)
        XCTAssertEqual(nginx["annotations"]?["note"]?.string, "line one\nline two\n")
        XCTAssertEqual(nginx["annotations"]?["folded"]?.string, "a b")
        XCTAssertEqual(nginx["keywords"]?.items?.compactMap(\.string), ["web", "proxy"])
        XCTAssertEqual(root["serverInfo"]?["contextPath"]?.string, "/api")
    }

    func testRewriteTouchesOnlyURLs() throws {
        let idx = try ChartIndex.parse(Self.helmStyle)
        let (text, kept) = IndexRewriter.rewrite(idx, keepVersions: nil)
        XCTAssertEqual(kept.count, 3)
        let again = try ChartIndex.parse(text)
        XCTAssertEqual(again.entries.map(\.urls), [["alpine-0.2.0.tgz"], ["alpine-0.1.0.tgz"], ["nginx-1.2.3-rc.1.tgz"]])
        XCTAssertEqual(again.entries.map(\.digest), idx.entries.map(\.digest))
        // Every line that is not about urls is unchanged.
        let before = Self.helmStyle.split(separator: "\n").filter { !$0.contains("urls") && !$0.contains(".tgz") }
        let after = text.split(separator: "\n").filter { !$0.contains("urls") && !$0.contains(".tgz") }
        XCTAssertEqual(before, after)
        XCTAssertFalse(text.contains("example.com"))
    }

    func testKeepVersions() throws {
        var yaml = "apiVersion: v1\nentries:\n  app:\n"
        for v in ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "2.0.0", "0.9.0"] {
            yaml += "  - name: app\n    version: \(v)\n    urls:\n    - app-\(v).tgz\n"
        }
        let idx = try ChartIndex.parse(yaml)
        let (text, kept) = IndexRewriter.rewrite(idx, keepVersions: 3)
        XCTAssertEqual(Set(kept.map(\.version)), ["2.0.0", "2.0.0-rc.1", "1.10.0"])
        XCTAssertEqual(Set(try ChartIndex.parse(text).entries.map(\.version)), ["2.0.0", "2.0.0-rc.1", "1.10.0"])
    }

    func testJSONIndex() throws {
        let json = #"{"apiVersion":"v1","entries":{"app":[{"name":"app","version":"1.0.0","digest":"sha256:515c6a7f9e13bcb9e4e2e38a0e1a5a3c8bde9ad0b1a1d0d9cc2e6b2a7c2d8e11","urls":["https://h/app-1.0.0.tgz"],"extra":{"k":[1,2]}}]},"generated":"x"}"#
        let idx = try ChartIndex.parse(json)
        XCTAssertEqual(idx.format, .json)
        let (text, _) = IndexRewriter.rewrite(idx, keepVersions: nil)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let entry = try XCTUnwrap(((obj["entries"] as? [String: Any])?["app"] as? [[String: Any]])?.first)
        XCTAssertEqual(entry["urls"] as? [String], ["app-1.0.0.tgz"])
        XCTAssertEqual((entry["extra"] as? [String: Any])?["k"] as? [Int], [1, 2])
        XCTAssertEqual(obj["generated"] as? String, "x")
    }

    func testMalformedIndexesAreErrorsNotCrashes() {
        for bad in ["entries: [", "apiVersion: v1\nentries:\n  a:\n  - name: a\n   version: 1\n", "just text", "- a\n- b\n", "{\"entries\": 5}", "a: 'unterminated\n", "entries:\n  x: 1\n  x: 2\n"] {
            XCTAssertThrowsError(try ChartIndex.parse(bad), bad.debugDescription)
        }
        // Versions nested one level too deep: unusable entries are skipped.
        let deep = "apiVersion: v1\nentries:\n  app:\n    versions:\n    - name: app\n      version: 1.0.0\n"
        let idx = try? ChartIndex.parse(deep)
        XCTAssertEqual(idx?.entries.count, 0)
        XCTAssertEqual(idx?.skipped.count, 1)
    }

    func testHostileNamesAreSkipped() throws {
        let yaml = "entries:\n  ../../etc:\n  - name: ok\n    version: 1.0.0\n    urls: [x]\n  ok:\n  - name: ok\n    version: 1.0.0/../../x\n    urls: [y]\n"
        let idx = try ChartIndex.parse(yaml)
        XCTAssertEqual(idx.entries.count, 0)
        XCTAssertEqual(idx.skipped.count, 2)
    }

    func testSemanticVersionOrder() {
        let ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "v1.2", "1.10.0"]
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            XCTAssertTrue(SemanticVersion.precedes(a, b), "\(a) < \(b)")
            XCTAssertFalse(SemanticVersion.precedes(b, a), "\(b) !< \(a)")
        }
    }

    /// Opt-in: ANCHORAGE_HELM_CORPUS=DIR runs the parser and the rewriter over
    /// every index file there (the team's real-world corpus).
    func testCorpusWhenGiven() throws {
        guard let dir = ProcessInfo.processInfo.environment["ANCHORAGE_HELM_CORPUS"] else {
            throw XCTSkip("ANCHORAGE_HELM_CORPUS not set: corpus run not requested (scripts/check-helm-corpus DIR runs it)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") || $0.hasSuffix(".yml") }.sorted()
        XCTAssertFalse(files.isEmpty)
        for f in files {
            let text = try String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8)
            let t0 = Date()
            do {
                let idx = try ChartIndex.parse(text)
                let (out, kept) = IndexRewriter.rewrite(idx, keepVersions: nil)
                let again = try ChartIndex.parse(out)
                XCTAssertEqual(again.entries.count, idx.entries.count, f)
                XCTAssertTrue(again.entries.allSatisfy { $0.urls == [$0.fileName] }, f)
                XCTAssertEqual(again.entries.map(\.digest), idx.entries.map(\.digest), f)
                print("corpus \(f): \(idx.entries.count) entries, \(idx.skipped.count) skipped, \(kept.count) kept, \(Int(Date().timeIntervalSince(t0) * 1000)) ms")
            } catch {
                print("corpus \(f): refused: \(error)")
            }
        }
    }
}
