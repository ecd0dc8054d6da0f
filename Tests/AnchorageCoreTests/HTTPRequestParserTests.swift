import XCTest
@testable import AnchorageCore

final class HTTPRequestParserTests: XCTestCase {
    private func parse(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> (HTTPRequestParser.Result, HTTPRequest?) {
        var p = HTTPRequestParser(limits: limits)
        let bytes = Array(s.utf8)
        let r = bytes.withUnsafeBytes { p.parse($0) }
        return (r, p.parsed)
    }

    func testSimpleGet() {
        let (r, req) = parse("GET /v2/library/alpine/manifests/3?ns=docker.io HTTP/1.1\r\nHost: x\r\nAccept: a, b\r\n\r\n")
        XCTAssertEqual(r, .request(consumed: 83))
        XCTAssertEqual(req?.method, .get)
        XCTAssertEqual(req?.path, "/v2/library/alpine/manifests/3")
        XCTAssertEqual(req?.queryValue("ns"), "docker.io")
        XCTAssertEqual(req?.headers["accept"], "a, b")
        XCTAssertEqual(req?.version, .http11)
        XCTAssertTrue(req?.keepAlive ?? false)
    }

    func testHTTP10DefaultsToClose() {
        let (_, req) = parse("GET / HTTP/1.0\r\n\r\n")
        XCTAssertEqual(req?.keepAlive, false)
        let (_, req2) = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(req2?.keepAlive, true)
        let (_, req3) = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(req3?.keepAlive, false)
    }

    func testPipelinedRequestsLeaveTheRest() {
        let two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        var bytes = Array(two.utf8)
        var p = HTTPRequestParser()
        guard case .request(let n) = bytes.withUnsafeBytes({ p.parse($0) }) else { return XCTFail() }
        XCTAssertEqual(p.parsed?.path, "/a")
        bytes.removeFirst(n)
        p.reset()
        guard case .request(let m) = bytes.withUnsafeBytes({ p.parse($0) }) else { return XCTFail() }
        XCTAssertEqual(p.parsed?.path, "/b")
        XCTAssertEqual(m, bytes.count)
    }

    func testSplitAcrossEveryByteBoundary() {
        let text = Array("HEAD /v2/ HTTP/1.1\r\nHost: localhost:5000\r\nUser-Agent: t\r\n\r\n".utf8)
        var p = HTTPRequestParser()
        var buf: [UInt8] = []
        for (i, b) in text.enumerated() {
            buf.append(b)
            let r = buf.withUnsafeBytes { p.parse($0) }
            if i < text.count - 1 {
                XCTAssertEqual(r, .needMore, "at byte \(i)")
            } else {
                XCTAssertEqual(r, .request(consumed: text.count))
            }
        }
        XCTAssertEqual(p.parsed?.method, .head)
        XCTAssertEqual(p.parsed?.headers["user-agent"], "t")
    }

    func testRequestLineLimit() {
        let long = "GET /" + String(repeating: "a", count: 8200) + " HTTP/1.1\r\nHost: x\r\n\r\n"
        XCTAssertEqual(parse(long).0, .error(.requestLineTooLong))
        // Also while still incomplete: no need to wait for the end of the line.
        XCTAssertEqual(parse("GET /" + String(repeating: "a", count: 8300)).0, .error(.requestLineTooLong))
        XCTAssertEqual(HTTPParseError.requestLineTooLong.status.code, 414)
    }

    func testHeaderBytesLimit() {
        var s = "GET / HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<40 { s += "X-Big-\(i): " + String(repeating: "v", count: 2000) + "\r\n" }
        XCTAssertEqual(parse(s + "\r\n").0, .error(.headersTooLarge))
        XCTAssertEqual(parse(s).0, .error(.headersTooLarge))
        XCTAssertEqual(HTTPParseError.headersTooLarge.status.code, 431)
    }

    /// Regression: a large head arriving in pieces is 431, not 414 (the
    /// request line had ended in an earlier piece).
    func testHeaderLimitsWhenFedInChunks() {
        var s = "GET / HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<40 { s += "X-Big-\(i): " + String(repeating: "v", count: 2000) + "\r\n" }
        let bytes = Array(s.utf8)
        var p = HTTPRequestParser()
        var buf: [UInt8] = []
        var last = HTTPRequestParser.Result.needMore
        for chunk in stride(from: 0, to: bytes.count, by: 1000) {
            buf.append(contentsOf: bytes[chunk..<min(chunk + 1000, bytes.count)])
            last = buf.withUnsafeBytes { p.parse($0) }
            if last != .needMore { break }
        }
        XCTAssertEqual(last, .error(.headersTooLarge))
    }

    func testHeaderCountLimit() {
        var s = "GET / HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<100 { s += "X-\(i): v\r\n" }
        XCTAssertEqual(parse(s + "\r\n").0, .error(.tooManyHeaders))
        XCTAssertEqual(HTTPParseError.tooManyHeaders.status.code, 431)
        var ok = "GET / HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<99 { ok += "X-\(i): v\r\n" }
        guard case .request = parse(ok + "\r\n").0 else { return XCTFail("100 fields are allowed") }
    }

    func testMalformedInputs() {
        let cases = [
            "GET\r\n\r\n",
            "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET http//x HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / FOO/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\nHost: x\n\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\u{0}b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /a\u{7f}b HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for c in cases {
            guard case .error(let e) = parse(c).0 else {
                XCTFail("accepted: \(c.debugDescription)")
                continue
            }
            XCTAssertEqual(e.status.code, 400, c.debugDescription)
        }
    }

    /// A TLS ClientHello (or any binary) is refused at once, not after a timeout.
    func testBinaryPrefixFailsFast() {
        var p = HTTPRequestParser()
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]
        XCTAssertEqual(hello.withUnsafeBytes { p.parse($0) }.errorStatus, 400)
        var p2 = HTTPRequestParser()
        let withLF: [UInt8] = [0x16, 0x03, 0x01, 0x0a, 0x00, 0x01]   // a LF inside random bytes
        XCTAssertEqual(withLF.withUnsafeBytes { p2.parse($0) }.errorStatus, 400)
        var q = HTTPRequestParser()
        XCTAssertEqual(Array("GE".utf8).withUnsafeBytes { q.parse($0) }, .needMore)
    }

    func testUnsupportedVersion() {
        XCTAssertEqual(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n").0, .error(.unsupportedVersion))
    }

    func testBodyFramingAndSmuggling() {
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").1?.framing, .contentLength(5))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").1?.framing, RequestBodyFraming.none)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").1?.framing, .chunked)
        // Both framings: refused (RFC 9112 §6.3).
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").0.errorStatus, 400)
        // Conflicting duplicates refused, identical duplicates tolerated.
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").0.errorStatus, 400)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").1?.framing, .contentLength(5))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n").0.errorStatus, 400)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n").0.errorStatus, 400)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n").0.errorStatus, 501)
    }

    func testLeadingEmptyLinesTolerated() {
        guard case .request = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").0 else { return XCTFail() }
    }

    /// The method, version, path and query come from the line's bytes.
    func testRequestLineFromBytes() {
        for (method, want) in [("GET", HTTPMethod.get), ("HEAD", .head), ("PUT", .put), ("POST", .post), ("PATCH", .patch),
                               ("DELETE", .delete), ("get", .other("get")), ("GETX", .other("GETX")), ("OPTIONS", .options)] {
            XCTAssertEqual(parse("\(method) / HTTP/1.1\r\nHost: x\r\n\r\n").1?.method, want, method)
        }
        let (_, req) = parse("GET /a?b=c?d HTTP/1.0\r\n\r\n")
        XCTAssertEqual(req?.target, "/a?b=c?d")
        XCTAssertEqual(req?.path, "/a")
        XCTAssertEqual(req?.query, "b=c?d")
        XCTAssertEqual(req?.version, .http10)
        let (_, bare) = parse("GET /a? HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(bare?.path, "/a")
        XCTAssertEqual(bare?.query, "")
        let (_, plain) = parse("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(plain?.path, "/v2/")
        XCTAssertNil(plain?.query)
        XCTAssertEqual(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").1?.path, "*")
        XCTAssertEqual(parse("GET * HTTP/1.1\r\nHost: x\r\n\r\n").0.errorStatus, 400)
        XCTAssertEqual(parse("GET / HTTP/1.1 \r\nHost: x\r\n\r\n").0.errorStatus, 400)
        XCTAssertEqual(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n").0.errorStatus, 505)
        XCTAssertEqual(parse("GET /\r\nHost: x\r\n\r\n").0.errorStatus, 400)
    }

    func testQueryDecoding() {
        let (_, req) = parse("GET /v2/x/tags/list?n=10&last=a%2Bb&ns=ghcr.io HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(req?.queryValue("n"), "10")
        XCTAssertEqual(req?.queryValue("last"), "a+b")
        XCTAssertEqual(req?.queryValue("ns"), "ghcr.io")
        XCTAssertNil(req?.queryValue("missing"))
    }
}

extension HTTPRequestParser.Result {
    var errorStatus: Int? {
        if case .error(let e) = self { return e.status.code }
        return nil
    }
}
