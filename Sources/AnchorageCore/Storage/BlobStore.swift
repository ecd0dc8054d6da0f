/// Where verified, content-addressed bytes live: blobs, manifests and chart
/// archives, each under its digest. The seam between what the registry and
/// chart modules serve and where it is kept, as distribution's storage
/// driver: the local disk (`FileBlobStore`) is one store; a remote object
/// store can be another. Whatever the store, a blob is visible under a
/// digest only after its bytes hashed to it (`BlobWriter.commit`).
protocol BlobStore: Sendable {
    /// The stored blob's size, or nil when the store does not hold it.
    func stat(_ d: Digest) -> Int64?
    /// Opens a stored blob for reading and marks it used; nil on a miss.
    func open(_ d: Digest) -> StoredBlob?
    /// A writer for a new blob: the bytes are hashed as they arrive and
    /// become visible only through `commit(as:)` with the matching digest.
    /// `followed`: clients read the blob while it is written (a shared fetch).
    func makeWriter(_ algorithm: Digest.Algorithm, followed: Bool) -> BlobWriter?
    /// Stores a small verified body (a manifest) under its digest.
    func put(_ bytes: [UInt8], digest: Digest) -> Bool
    /// Removes a blob; readers that opened it keep reading.
    func delete(_ d: Digest)
    /// Every stored blob with its size.
    func forEach(_ body: (Digest, Int64) -> Void)
}

/// An opened blob: a local file (sent with sendfile) or a stream (what a
/// remote store returns).
enum StoredBlob: Sendable {
    case file(OpenFile, size: Int64)
    case stream(any BodyStream)

    var size: Int64 {
        switch self {
        case .file(_, let size): size
        case .stream(let s): s.length
        }
    }

    /// The whole blob, if it is at most `limit` bytes and reads completely.
    func readAll(limit: Int) -> [UInt8]? {
        switch self {
        case .file(let f, _):
            return f.readAll(limit: limit)
        case .stream(let s):
            guard s.length <= limit, s.available() == s.length else { return nil }
            var buf = [UInt8](repeating: 0, count: Int(s.length))
            var at = 0
            while at < buf.count {
                let r = buf.withUnsafeMutableBytes { s.read(at: Int64(at), into: UnsafeMutableRawBufferPointer(rebasing: $0[at...])) }
                guard case .done(let n) = r else { return nil }
                at += n
            }
            return buf
        }
    }
}
