import XCTest
@testable import AnchorageCore

/// AWS Signature Version 4 against AWS's published vectors: the generic
/// test suite (`aws-sig-v4-test-suite`, service "service") and the S3
/// documentation's examples (GET with Range, PUT, presigned GET). Each
/// case checks the canonical request where the vector gives it, so a
/// mismatch says which line differs.
final class SigV4Tests: XCTestCase {
    private let suite = SigV4Signer(accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service")
    private let s3 = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "s3")
    private let suiteDate = SigV4Date(stamp: "20150830T123600Z")!
    private let s3Date = SigV4Date(stamp: "20130524T000000Z")!

    private func suiteSign(path: String, query: [(String, String)] = []) -> SigV4Signer.Signed {
        suite.sign(method: "GET", path: path, query: query,
                   headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
                   payloadHash: SigV4Signer.emptyPayload, date: suiteDate)
    }

    func testSuiteGetVanilla() {
        let s = suiteSign(path: "/")
        XCTAssertEqual(s.canonicalRequest, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(SigV4Signer.emptyPayload)")
        XCTAssertEqual(s.stringToSign, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        XCTAssertEqual(s.authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    func testSuiteQuerySortedByName() {
        let s = suiteSign(path: "/", query: [("Param2", "value2"), ("Param1", "value1")])
        XCTAssertEqual(s.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2], "Param1=value1&Param2=value2")
        XCTAssertEqual(s.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    func testSuiteUnreservedCharactersStayAsTheyAre() {
        let s = suiteSign(path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        XCTAssertEqual(s.signature, "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f")
    }

    func testS3GetObjectWithRange() {
        let s = s3.sign(method: "GET", path: "/test.txt", query: [],
                        headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                                  ("x-amz-content-sha256", SigV4Signer.emptyPayload), ("x-amz-date", "20130524T000000Z")],
                        payloadHash: SigV4Signer.emptyPayload, date: s3Date)
        XCTAssertEqual(s.canonicalRequest, """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        XCTAssertEqual(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testS3PutObjectEncodesThePathOnce() {
        let body = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        XCTAssertEqual(Hasher.digest(Array("Welcome to Amazon S3.".utf8)).hex, body)
        let s = s3.sign(method: "PUT", path: "/test$file.text", query: [],
                        headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("Host", "examplebucket.s3.amazonaws.com"),
                                  ("x-amz-content-sha256", body), ("x-amz-date", "20130524T000000Z"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                        payloadHash: body, date: s3Date)
        XCTAssertTrue(s.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"), s.canonicalRequest)
        XCTAssertEqual(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    func testS3PresignedGet() {
        let q = s3.presignedQuery(method: "GET", path: "/test.txt", host: "examplebucket.s3.amazonaws.com", expires: 86400, date: s3Date)
        XCTAssertEqual(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    func testEncodingAndHeaderCanonicalForm() {
        XCTAssertEqual(SigV4Signer.encode("a b+c/ключ", keepSlash: false), "a%20b%2Bc%2F%D0%BA%D0%BB%D1%8E%D1%87")
        XCTAssertEqual(SigV4Signer.encode("/p/a b", keepSlash: true), "/p/a%20b")
        XCTAssertEqual(SigV4Signer.canonicalQuery([("uploads", "")]), "uploads=")
        let h = SigV4Signer.canonicalHeaders([("My-Header1", "  value1  "), ("my-header2", "\"a   b   c\""), ("my-header1", "value2")])
        XCTAssertEqual(h.text, "my-header1:value1,value2\nmy-header2:\"a b c\"\n")
        XCTAssertEqual(h.signed, "my-header1;my-header2")
        XCTAssertEqual(SigV4Date(Date(timeIntervalSince1970: 1_369_353_600)).stamp, "20130524T000000Z")
    }
}
