import XCTest
@testable import AnchorageCore

final class ByteRangeTests: XCTestCase {
    func testForms() {
        XCTAssertEqual(ByteRangeRequest.parse("bytes=0-99", length: 1000), .satisfiable(start: 0, count: 100))
        XCTAssertEqual(ByteRangeRequest.parse("bytes=900-", length: 1000), .satisfiable(start: 900, count: 100))
        XCTAssertEqual(ByteRangeRequest.parse("bytes=-10", length: 1000), .satisfiable(start: 990, count: 10))
        XCTAssertEqual(ByteRangeRequest.parse("bytes=-5000", length: 1000), .satisfiable(start: 0, count: 1000))
        XCTAssertEqual(ByteRangeRequest.parse("bytes=990-5000", length: 1000), .satisfiable(start: 990, count: 10))
        XCTAssertEqual(ByteRangeRequest.parse(" bytes = 5-5", length: 1000), .none) // "bytes =" is not the unit syntax
        XCTAssertEqual(ByteRangeRequest.parse("bytes=5-5", length: 1000), .satisfiable(start: 5, count: 1))
    }

    func testUnsatisfiable() {
        XCTAssertEqual(ByteRangeRequest.parse("bytes=1000-", length: 1000), .unsatisfiable)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=1000-2000", length: 1000), .unsatisfiable)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=-0", length: 1000), .unsatisfiable)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=0-", length: 0), .unsatisfiable)
    }

    func testIgnoredForms() {
        XCTAssertEqual(ByteRangeRequest.parse(nil, length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("items=0-1", length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=0-1,3-4", length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=5-1", length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=a-b", length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=-", length: 10), .none)
        XCTAssertEqual(ByteRangeRequest.parse("bytes=99999999999999999999-", length: 10), .none)
    }

    func testConditionals() {
        XCTAssertTrue(ConditionalRequest.noneMatch("\"abc\"", etag: "\"abc\""))
        XCTAssertTrue(ConditionalRequest.noneMatch("\"x\", W/\"abc\"", etag: "\"abc\""))
        XCTAssertTrue(ConditionalRequest.noneMatch("*", etag: "\"abc\""))
        XCTAssertFalse(ConditionalRequest.noneMatch("\"abd\"", etag: "\"abc\""))
        XCTAssertFalse(ConditionalRequest.noneMatch(nil, etag: "\"abc\""))
        XCTAssertTrue(ConditionalRequest.ifRangeHolds(nil, etag: nil))
        XCTAssertTrue(ConditionalRequest.ifRangeHolds("\"abc\"", etag: "\"abc\""))
        XCTAssertFalse(ConditionalRequest.ifRangeHolds("\"old\"", etag: "\"abc\""))
        XCTAssertFalse(ConditionalRequest.ifRangeHolds("Wed, 21 Oct 2015 07:28:00 GMT", etag: "\"abc\""))
    }

    func testFinalizerAppliesRangeAndConditionals() {
        var h = HTTPHeaders()
        h.add("ETag", "\"d1\"")
        let full = HTTPResponse(status: .ok, headers: h, body: .bytes(Array(0..<100)))
        var req = HTTPRequest(method: .get, target: "/x")
        req.headers.add("Range", "bytes=10-19")
        let r = ResponseFinalizer.finalize(full, for: req)
        XCTAssertEqual(r.status.code, 206)
        XCTAssertEqual(r.headers["Content-Range"], "bytes 10-19/100")
        if case .bytes(let b) = r.body { XCTAssertEqual(b, Array(10..<20)) } else { XCTFail() }

        req.headers.add("If-Range", "\"other\"")
        XCTAssertEqual(ResponseFinalizer.finalize(full, for: req).status.code, 200)

        var req2 = HTTPRequest(method: .get, target: "/x")
        req2.headers.add("If-None-Match", "\"d1\"")
        req2.headers.add("Range", "bytes=10-19")
        let r2 = ResponseFinalizer.finalize(full, for: req2)
        XCTAssertEqual(r2.status.code, 304)
        XCTAssertEqual(r2.body.length, 0)

        var req3 = HTTPRequest(method: .get, target: "/x")
        req3.headers.add("Range", "bytes=200-")
        let r3 = ResponseFinalizer.finalize(full, for: req3)
        XCTAssertEqual(r3.status.code, 416)
        XCTAssertEqual(r3.headers["Content-Range"], "bytes */100")

        // Errors are never ranged.
        let err = HTTPResponse.text(.notFound, "no")
        XCTAssertEqual(ResponseFinalizer.finalize(err, for: req).status.code, 404)
    }

    func testHeadBytesCarryBodyLengthAndConnection() {
        let r = HTTPResponse(status: .ok, body: .bytes([1, 2, 3]))
        let head = String(decoding: ResponseFinalizer.headBytes(r, keepAlive: false, version: .http11, date: "D"), as: UTF8.self)
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(head.contains("Content-Length: 3\r\n"))
        XCTAssertTrue(head.contains("Connection: close\r\n"))
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"))
        let nm = HTTPResponse(status: .notModified)
        XCTAssertFalse(String(decoding: ResponseFinalizer.headBytes(nm, keepAlive: true, version: .http11, date: "D"), as: UTF8.self).contains("Content-Length"))
    }
}
