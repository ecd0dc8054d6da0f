import Foundation
import XCTest
@testable import AnchorageCore

/// The console's parts that need no daemon: its JSON writer, the request
/// checks against cross-site forgery, sessions, the pull-command host and
/// the lenient manifest reader.
final class ConsoleUnitTests: XCTestCase {
    func testJSONTextRoundTripsAndNeverEmitsMarkup() throws {
        let value: [String: Any] = ["b": [1, Int64(2), 2.5, true, NSNull()], "a": "<script>\"x\"\\\n\u{1}\u{2028}", "n": [String: Any]()]
        let text = JSONText.encode(value)
        XCTAssertFalse(text.contains("<"), text)
        XCTAssertTrue(text.hasPrefix("{\"a\":"), "keys in byte order: \(text)")
        let back = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(back["a"] as? String, "<script>\"x\"\\\n\u{1}\u{2028}")
        XCTAssertEqual((back["b"] as? [Any])?.count, 5)
        XCTAssertEqual((back["b"] as? [Any])?[2] as? Double, 2.5)
        XCTAssertEqual((back["b"] as? [Any])?[3] as? Bool, true)
        XCTAssertTrue((back["b"] as? [Any])?[4] is NSNull)
    }

    private func request(_ method: HTTPMethod, _ headers: [(String, String)]) -> HTTPRequest {
        var h = HTTPHeaders()
        for (k, v) in headers { h.add(k, v) }
        return HTTPRequest(method: method, target: "/api/sync", headers: h)
    }

    func testOnlyTheConsolesOwnOriginMayChangeState() {
        XCTAssertNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000")])), "a script sends neither header")
        XCTAssertNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000"), ("Origin", "http://m:5000"), ("Sec-Fetch-Site", "same-origin")])))
        XCTAssertNotNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000"), ("Origin", "http://evil:5000")])))
        XCTAssertNotNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000"), ("Origin", "http://m:5001")])), "another port is another origin")
        XCTAssertNotNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000"), ("Sec-Fetch-Site", "same-site")])))
        XCTAssertNotNil(ConsoleHandler.checkOrigin(request(.post, [("Host", "m:5000"), ("Origin", "null")])))
        XCTAssertTrue(ConsoleHandler.equal("abc", "abc"))
        XCTAssertFalse(ConsoleHandler.equal("abc", "abd"))
        XCTAssertFalse(ConsoleHandler.equal("abc", "abcd"))
    }

    func testSessions() {
        let table = SessionTable()
        let (token, csrf) = table.open("alice")
        XCTAssertEqual(token.count, 64)
        XCTAssertNotEqual(token, csrf)
        XCTAssertEqual(table.find(token)?.user, "alice")
        XCTAssertEqual(table.find(token)?.csrf, csrf)
        XCTAssertNil(table.find(csrf), "the CSRF token is no session")
        let r = request(.get, [("Cookie", "theme=dark; \(SessionTable.cookieName)=\(token); x=y")])
        XCTAssertEqual(SessionTable.token(in: r), token)
        table.close(token)
        XCTAssertNil(table.find(token))
    }

    func testPullCommandHostIsTheBrowsersOnlyWhenPlain() {
        XCTAssertEqual(PullCommands.host("mirror.example:5000"), "mirror.example:5000")
        XCTAssertEqual(PullCommands.host("[::1]:5000"), "[::1]:5000")
        XCTAssertEqual(PullCommands.host("evil\"; rm -rf /"), "MIRROR:5000")
        XCTAssertEqual(PullCommands.host(nil), "MIRROR:5000")
        let key = RepositoryKey(kind: .hosted, source: "team", name: RepositoryName("app")!)
        let cmds = PullCommands(host: "m:5000", key: key, defaultUpstream: "docker.io").commands(ref: .tag(Tag("v1")!), digest: Digest("sha256:" + String(repeating: "a", count: 64))!, chart: true)
        XCTAssertEqual(cmds.first?.command, "helm pull oci://m:5000/team/app --version v1 --plain-http")
        XCTAssertTrue(cmds.contains { $0.command == "docker pull m:5000/team/app:v1" })
    }

    func testImageManifestReadsIndexesAndImages() throws {
        let d = { (c: Character) in "sha256:" + String(repeating: c, count: 64) }
        let index = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(d("a"))","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},{"digest":"not-a-digest"}]}"#
        let i = try XCTUnwrap(ImageManifest.parse(Array(index.utf8), storedType: nil))
        XCTAssertTrue(i.isIndex)
        XCTAssertEqual(i.children.map(\.platform), ["linux/arm64/v8"], "a broken descriptor is left out")
        let image = #"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"\#(d("b"))","size":5},"layers":[{"digest":"\#(d("c"))","size":7,"mediaType":"x"}]}"#
        let m = try XCTUnwrap(ImageManifest.parse(Array(image.utf8), storedType: "application/vnd.oci.image.manifest.v1+json"))
        XCTAssertFalse(m.isIndex)
        XCTAssertEqual(m.blobs.map(\.size), [5, 7])
        XCTAssertEqual(m.artifactType, ImageInspector.helmConfigType)
        XCTAssertNil(ImageManifest.parse(Array("[1]".utf8), storedType: nil))
    }
}
