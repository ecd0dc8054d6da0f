import Foundation

/// The store could not give a usable answer (unreachable, refusing,
/// misconfigured): why, as the store or the transport said it.
struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// What a HEAD or a listing says about one object.
struct ObjectInfo: Sendable, Equatable {
    let key: String
    let size: Int64
    /// The store's ETag, quoted as sent (for `If-Match`).
    let etag: String
    /// Last modified, unix milliseconds (the store keeps whole seconds).
    let millis: Int64
}

/// One page-joined `ListObjectsV2` answer.
struct BucketListing: Sendable {
    var objects: [ObjectInfo] = []
    /// With a delimiter: the "directories" one level below the prefix.
    var prefixes: [String] = []
}

/// What a write requires of the object it replaces.
enum WriteCondition: Sendable {
    case none
    /// Only if no object has the key (`If-None-Match: *`).
    case absent
    /// Only if the object is still the version with this ETag (`If-Match`).
    case matching(String)

    var headers: [(String, String)] {
        switch self {
        case .none: []
        case .absent: [("If-None-Match", "*")]
        case .matching(let etag): [("If-Match", etag)]
        }
    }
}

/// Plain object operations on the shared bucket, for the records and
/// content that are not cached blobs (hosted repositories, the collection
/// lease). Every answer updates the store's health: a transport failure or
/// an answer that is neither success, 304, 404 nor 412 marks it down.
extension ObjectStoreTier {
    func send(_ method: String, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
              payloadHash: String? = nil, body: UploadBody? = nil, limit: Int = 8 << 20) -> Result<(ResponseHead, [UInt8]), StoreUnavailable> {
        let sink = CollectingSink(limit: limit)
        switch s3.request(method, key: key, query: query, headers: headers, payloadHash: payloadHash, body: body, sink: sink) {
        case .failure(let e):
            record("\(e)")
            return .failure(StoreUnavailable(reason: "\(e)"))
        case .success(let head) where (200...299).contains(head.status) || [304, 404, 412].contains(head.status):
            record(nil)
            return .success((head, sink.body))
        case .success(let head):
            let why = S3Client.errorText(status: head.status, body: sink.body)
            record(why)
            return .failure(StoreUnavailable(reason: why))
        }
    }

    func head(_ key: String) -> Result<ObjectInfo?, StoreUnavailable> {
        send("HEAD", key: key, limit: 0).map { head, _ in
            head.status == 200 ? ObjectStoreTier.info(key, head.headers) : nil
        }
    }

    /// A small object whole, with its version; nil when absent.
    func get(_ key: String, limit: Int = 1 << 20) -> Result<(bytes: [UInt8], info: ObjectInfo)?, StoreUnavailable> {
        send("GET", key: key, limit: limit).map { head, body in
            head.status == 200 ? (body, ObjectStoreTier.info(key, head.headers)) : nil
        }
    }

    /// Writes a small object; false when `condition` did not hold (412).
    func put(_ key: String, _ bytes: [UInt8], condition: WriteCondition = .none, contentType: String? = nil) -> Result<Bool, StoreUnavailable> {
        let headers = condition.headers + (contentType.map { [("Content-Type", $0)] } ?? [])
        return send("PUT", key: key, headers: headers, payloadHash: Hasher.digest(bytes, .sha256).hex,
                    body: UploadBody(bytes: bytes), limit: 64 * 1024).map { head, _ in head.status != 412 }
    }

    /// Writes a verified local file once under `key` (`If-None-Match: *`),
    /// signed with its SHA-256 so the store refuses a body that does not
    /// hash to it; true also when the object was there (412). A large file
    /// goes in parts (`MultipartUpload`).
    func putOnce(_ key: String, file: OpenFile, size: Int64, sha256: String?, contentType: String? = nil) -> Result<Bool, StoreUnavailable> {
        if size > MultipartUpload.threshold { return MultipartUpload(tier: self, key: key).put(file: file, size: size, contentType: contentType) }
        let headers = [("If-None-Match", "*")] + (contentType.map { [("Content-Type", $0)] } ?? [])
        return send("PUT", key: key, headers: headers, payloadHash: sha256,
                    body: UploadBody(file: file, offset: 0, length: size), limit: 64 * 1024).map { head, _ in
            if head.status == 200 { counters.storeTierWrites.add(1, ordering: .relaxed) }
            return (200...299).contains(head.status) || head.status == 412
        }
    }

    /// False when there was nothing to delete (S3 itself answers 204 either way).
    @discardableResult
    func delete(_ key: String) -> Result<Bool, StoreUnavailable> {
        send("DELETE", key: key, limit: 64 * 1024).map { head, _ in head.status != 404 }
    }

    /// Every object under `prefix` (all pages); with `delimited`, only one
    /// level: objects directly under it and the next level's prefixes.
    func list(_ prefix: String, delimited: Bool) -> Result<BucketListing, StoreUnavailable> {
        var out = BucketListing()
        var token: String?
        let full = s3.config.prefix + prefix
        repeat {
            var query = [("list-type", "2"), ("prefix", full)]
            if delimited { query.append(("delimiter", "/")) }
            if let token { query.append(("continuation-token", token)) }
            switch send("GET", key: nil, query: query, limit: 16 << 20) {
            case .failure(let e): return .failure(e)
            case .success(let (head, body)):
                guard head.status == 200 else { return .failure(StoreUnavailable(reason: S3Client.errorText(status: head.status, body: body))) }
                let page = ListPage(String(decoding: body, as: UTF8.self))
                let strip = s3.config.prefix.count
                out.objects += page.objects.map { ObjectInfo(key: String($0.key.dropFirst(strip)), size: $0.size, etag: $0.etag, millis: $0.millis) }
                out.prefixes += page.prefixes.map { String($0.dropFirst(strip)) }
                token = page.truncated ? page.next : nil
            }
        } while token != nil
        return .success(out)
    }

    private static func info(_ key: String, _ headers: HTTPHeaders) -> ObjectInfo {
        ObjectInfo(key: key, size: headers["Content-Length"].flatMap { Int64($0) } ?? 0, etag: headers["ETag"] ?? "",
                   millis: headers["Last-Modified"].flatMap(HTTPDate.parse) ?? 0)
    }
}

/// One page of a `ListObjectsV2` XML answer.
private struct ListPage {
    var objects: [ObjectInfo] = []
    var prefixes: [String] = []
    var truncated = false
    var next: String?

    init(_ xml: String) {
        for c in S3XML.elements("Contents", in: xml) {
            guard let key = S3XML.elements("Key", in: c).first.map(S3XML.unescape) else { continue }
            let size = S3XML.elements("Size", in: c).first.flatMap { Int64($0) } ?? 0
            let etag = S3XML.elements("ETag", in: c).first.map(S3XML.unescape) ?? ""
            let millis = S3XML.elements("LastModified", in: c).first.flatMap(HTTPDate.parseISO) ?? 0
            objects.append(ObjectInfo(key: key, size: size, etag: etag, millis: millis))
        }
        for p in S3XML.elements("CommonPrefixes", in: xml) {
            if let v = S3XML.elements("Prefix", in: p).first { prefixes.append(S3XML.unescape(v)) }
        }
        truncated = S3XML.elements("IsTruncated", in: xml).first == "true"
        next = S3XML.elements("NextContinuationToken", in: xml).first.map(S3XML.unescape)
    }
}

/// The two date forms an S3 store sends.
enum HTTPDate {
    /// `Tue, 08 Dec 2026 01:37:17 GMT` → unix ms.
    static func parse(_ text: String) -> Int64? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: text).map { Int64($0.timeIntervalSince1970 * 1000) }
    }

    /// `2026-12-08T01:37:17.000Z` (fraction optional) → unix ms.
    static func parseISO(_ text: some StringProtocol) -> Int64? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: String(text)) { return Int64(d.timeIntervalSince1970 * 1000) }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: String(text)).map { Int64($0.timeIntervalSince1970 * 1000) }
    }
}
