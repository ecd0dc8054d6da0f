import Foundation

/// A large verified local file written to the bucket in parts (S3's
/// multipart upload: create, one `PUT` per part, complete), as S3 requires
/// past 5 GB in one `PUT` and as S3 clients do past about 100 MB. Nothing
/// is visible under the key until the final request names every part; a
/// failure aborts the upload, so its parts do not linger in the bucket.
///
/// A blob fetched from an upstream goes up while it streams to its first
/// client (`StreamingCopy`): each part is sent once the fetch released it,
/// and the last part holds the tail the fetch releases only after the
/// digest matched, so the upload is completed only for verified content.
///
/// Parts go as `UNSIGNED-PAYLOAD`: signing one would need a second pass
/// over its bytes before it is sent. The file was verified against its
/// digest just before, and every node verifies what it reads from the
/// bucket (and deletes an object that does not match its name).
struct MultipartUpload {
    let tier: ObjectStoreTier
    let key: String

    /// Files larger than this go in parts.
    static let threshold: Int64 = 100 << 20
    static let minimumPart: Int64 = 16 << 20
    /// S3 allows at most 10,000 parts.
    static let maximumParts: Int64 = 10_000

    static func partSize(for size: Int64) -> Int64 {
        max(minimumPart, (size + maximumParts - 1) / maximumParts)
    }

    /// True when the bucket holds the object afterwards (also when another
    /// node had stored it). `ready(end)` is asked before each part is read
    /// from `file` (a file still being written): it waits until the bytes up
    /// to `end` may be read, or answers false to abandon the upload.
    func put(file: OpenFile, size: Int64, contentType: String?, ready: (Int64) -> Bool = { _ in true }) -> Result<Bool, StoreUnavailable> {
        switch tier.head(key) {
        case .failure(let e): return .failure(e)
        case .success(.some): return .success(true)
        case .success(nil): break
        }
        let created = tier.send("POST", key: key, query: [("uploads", "")], headers: contentType.map { [("Content-Type", $0)] } ?? [],
                                payloadHash: SigV4Signer.emptyPayload)
        let id: String
        switch created {
        case .failure(let e): return .failure(e)
        case .success(let (head, body)):
            guard head.status == 200, let found = MultipartUpload.element("UploadId", in: body) else {
                return .failure(StoreUnavailable(reason: "the store did not start a multipart upload (HTTP \(head.status))"))
            }
            id = found
        }
        let part = MultipartUpload.partSize(for: size)
        var etags: [String] = []
        var offset: Int64 = 0
        while offset < size {
            let length = min(part, size - offset)
            guard ready(offset + length) else {
                abort(id)
                return .success(false)
            }
            let sent = tier.send("PUT", key: key, query: [("partNumber", "\(etags.count + 1)"), ("uploadId", id)],
                                 body: UploadBody(file: file, offset: offset, length: length), limit: 64 * 1024)
            guard case .success(let (head, _)) = sent, head.status == 200, let etag = head.headers["ETag"] else {
                abort(id)
                if case .failure(let e) = sent { return .failure(e) }
                return .failure(StoreUnavailable(reason: "the store refused part \(etags.count + 1) of a multipart upload"))
            }
            etags.append(etag)
            offset += length
        }
        var xml = "<CompleteMultipartUpload>"
        for (i, etag) in etags.enumerated() { xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(etag)</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        // Written once, as a single PUT is: a 412 means another node completed first.
        let done = tier.send("POST", key: key, query: [("uploadId", id)], headers: [("If-None-Match", "*")],
                             payloadHash: Hasher.digest(body, .sha256).hex, body: UploadBody(bytes: body), limit: 64 * 1024)
        switch done {
        case .failure(let e):
            abort(id)
            return .failure(e)
        case .success(let (head, reply)):
            // S3 can answer 200 with an error document when completing fails late.
            if head.status == 412 {
                abort(id)
                return .success(true)
            }
            guard head.status == 200, MultipartUpload.element("Error", in: reply) == nil else {
                abort(id)
                return .failure(StoreUnavailable(reason: S3Client.errorText(status: head.status, body: reply)))
            }
            tier.counters.storeTierWrites.add(1, ordering: .relaxed)
            return .success(true)
        }
    }

    private func abort(_ id: String) {
        _ = tier.send("DELETE", key: key, query: [("uploadId", id)], limit: 64 * 1024)
    }

    private static func element(_ name: String, in body: [UInt8]) -> String? {
        S3XML.elements(name, in: String(decoding: body, as: UTF8.self)).first.map(String.init)
    }
}
