import COpenSSL
import Foundation

/// AWS Signature Version 4 for S3 requests, computed here rather than by
/// libcurl: 7.88's `CURLOPT_AWS_SIGV4` signs the query string as given
/// (not sorted and encoded) and leaves out `x-amz-content-sha256`.
///
/// Pure functions of their arguments: the canonical request, the string to
/// sign and the signature are each exposed so that a test can say which
/// one differs from the published vectors.
struct SigV4Signer: Sendable {
    let accessKey: String
    let secretKey: String
    let region: String
    let service: String

    /// Hex SHA-256 of an empty body.
    static let emptyPayload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    struct Signed: Sendable {
        let canonicalRequest: String
        let stringToSign: String
        let signature: String
        let authorization: String
        /// The headers to send: the given ones (x-amz-date included) and Authorization.
        let headers: [(String, String)]
    }

    /// Signs a request. `headers` must include `host` and `x-amz-date`
    /// (and, for S3, `x-amz-content-sha256`); all of them are signed.
    /// `query` holds decoded names and values.
    func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String, date: SigV4Date) -> Signed {
        let canon = SigV4Signer.canonicalHeaders(headers)
        let creq = [
            method,
            SigV4Signer.encode(path, keepSlash: true),
            SigV4Signer.canonicalQuery(query),
            canon.text,
            canon.signed,
            payloadHash,
        ].joined(separator: "\n")
        let sts = stringToSign(creq, date)
        let sig = signature(sts, date)
        let auth = "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope(date)), SignedHeaders=\(canon.signed), Signature=\(sig)"
        return Signed(canonicalRequest: creq, stringToSign: sts, signature: sig, authorization: auth, headers: headers + [("Authorization", auth)])
    }

    /// A presigned URL's query string (already encoded) for `method` on
    /// `path`, valid for `expires` seconds from `date`; only `host` is signed.
    func presignedQuery(method: String, path: String, host: String, expires: Int, date: SigV4Date) -> String {
        let q: [(String, String)] = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(accessKey)/\(scope(date))"),
            ("X-Amz-Date", date.stamp),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        let creq = [method, SigV4Signer.encode(path, keepSlash: true), SigV4Signer.canonicalQuery(q),
                    "host:\(host)\n", "host", SigV4Signer.unsignedPayload].joined(separator: "\n")
        return SigV4Signer.canonicalQuery(q) + "&X-Amz-Signature=" + signature(stringToSign(creq, date), date)
    }

    func scope(_ date: SigV4Date) -> String { "\(date.day)/\(region)/\(service)/aws4_request" }

    func stringToSign(_ canonicalRequest: String, _ date: SigV4Date) -> String {
        "AWS4-HMAC-SHA256\n\(date.stamp)\n\(scope(date))\n\(Hasher.digest(Array(canonicalRequest.utf8)).hex)"
    }

    func signature(_ stringToSign: String, _ date: SigV4Date) -> String {
        var key = SigV4Signer.hmac(Array("AWS4\(secretKey)".utf8), date.day)
        for part in [region, service, "aws4_request"] { key = SigV4Signer.hmac(key, part) }
        return hexString(SigV4Signer.hmac(key, stringToSign))
    }

    static func hmac(_ key: [UInt8], _ message: String) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        let msg = Array(message.utf8)
        _ = HMAC(EVP_sha256(), key, Int32(key.count), msg, msg.count, &out, &len)
        return Array(out.prefix(Int(len)))
    }

    /// Lower-case names, values trimmed with inner runs of spaces made one,
    /// sorted by name; repeated names joined with commas in their order.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (text: String, signed: String) {
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            byName[name.lowercased(), default: []].append(collapsed.trimmed(" \t"))
        }
        let names = byName.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let text = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        return (text, names.joined(separator: ";"))
    }

    /// Names and values encoded, sorted by encoded name, then value (byte order).
    static func canonicalQuery(_ items: [(String, String)]) -> String {
        items.map { (encode($0.0, keepSlash: false), encode($0.1, keepSlash: false)) }
            .sorted { a, b in a.0 != b.0 ? Array(a.0.utf8).lexicographicallyPrecedes(Array(b.0.utf8)) : Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8)) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters
    /// (and `/` in a path), upper-case hex, each byte of UTF-8 once.
    static func encode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }
}

/// The request time in the two forms SigV4 uses.
struct SigV4Date: Sendable {
    /// `YYYYMMDD'T'HHMMSS'Z'`
    let stamp: String
    var day: String { String(stamp.prefix(8)) }

    init?(stamp: String) {
        guard stamp.utf8.count == 16, stamp.hasSuffix("Z") else { return nil }
        self.stamp = stamp
    }

    init(_ date: Date) {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        stamp = String(format: "%04d%02d%02dT%02d%02d%02dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
    }
}
