import Foundation
import Synchronization

/// One blob upload in progress (`POST …/blobs/uploads/` until the final
/// `PUT`): a `BlobWriter` hashing into a temp file of the hosted store. At
/// most one request works on it at a time (`UploadTable.claim`), which is
/// what lets the writer be single-threaded while successive `PATCH`es
/// arrive on different connections.
final class UploadSession: @unchecked Sendable {
    let id: String
    let namespace: String
    let name: RepositoryName
    let writer: BlobWriter

    init(id: String, namespace: String, name: RepositoryName, writer: BlobWriter) {
        self.id = id
        self.namespace = namespace
        self.name = name
        self.writer = writer
    }

    /// Bytes received so far (the next `PATCH` must start here).
    var offset: Int64 { writer.received }
}

/// The uploads in progress, by id. In memory: a restart abandons them (their
/// temp files are removed at start-up, as a crashed process's are). Idle
/// ones are purged after the grace period.
final class UploadTable: Sendable {
    private struct Entry {
        let session: UploadSession
        var busy: Bool
        var lastUse: UInt64
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// Uploads open at once; more get 429 (each holds a descriptor and spools).
    static let limit = 512

    func start(_ namespace: String, _ name: RepositoryName, store: FileBlobStore) -> Result<UploadSession, RegistryError> {
        guard entries.withLock({ $0.count }) < UploadTable.limit else {
            var e = RegistryError(.tooManyRequests, .tooManyRequests, "too many uploads in progress; retry later")
            e.retryAfter = 5
            return .failure(e)
        }
        guard let writer = store.makeWriter(.sha256, followed: false) else {
            return .failure(RegistryError(.unknown, .internalServerError, "cannot create an upload file (see the log)"))
        }
        let id = UUID().uuidString.lowercased()
        let session = UploadSession(id: id, namespace: namespace, name: name, writer: writer)
        entries.withLock { $0[id] = Entry(session: session, busy: true, lastUse: monotonicMillis()) }
        return .success(session)
    }

    /// The upload for one request's exclusive use, until `release` or `remove`.
    func claim(_ id: String, _ namespace: String, _ name: RepositoryName) -> Result<UploadSession, RegistryError> {
        entries.withLock { e in
            guard var entry = e[id], entry.session.namespace == namespace, entry.session.name == name else {
                return .failure(RegistryError(.blobUploadUnknown, .notFound, "blob upload unknown", detail: String(id.prefix(80))))
            }
            guard !entry.busy else {
                return .failure(RegistryError(.blobUploadInvalid, .conflict, "another request is writing to this upload"))
            }
            entry.busy = true
            entry.lastUse = monotonicMillis()
            e[id] = entry
            return .success(entry.session)
        }
    }

    /// The upload's state without claiming it (`GET <location>`).
    func peek(_ id: String, _ namespace: String, _ name: RepositoryName) -> UploadSession? {
        entries.withLock { e in
            guard let entry = e[id], entry.session.namespace == namespace, entry.session.name == name, !entry.busy else { return nil }
            return entry.session
        }
    }

    func release(_ session: UploadSession) {
        entries.withLock { e in
            e[session.id]?.busy = false
            e[session.id]?.lastUse = monotonicMillis()
        }
    }

    /// Ends an upload: committed, failed or cancelled. Its temp file goes
    /// unless it was committed (renamed away).
    func remove(_ session: UploadSession, cancel: Bool) {
        entries.withLock { _ = $0.removeValue(forKey: session.id) }
        if cancel { session.writer.cancel() }
    }

    /// Cancels uploads idle longer than `idleMillis`; how many.
    func purge(idleMillis: UInt64, namespace: String) -> Int {
        let now = monotonicMillis()
        let stale = entries.withLock { e -> [UploadSession] in
            let old = e.values.filter { !$0.busy && $0.session.namespace == namespace && now &- $0.lastUse > idleMillis }.map(\.session)
            for s in old { e.removeValue(forKey: s.id) }
            return old
        }
        for s in stale { s.writer.cancel() }
        return stale.count
    }

    var count: Int { entries.withLock { $0.count } }
}

/// Takes one request's body into an upload's writer, on the loop thread,
/// refusing bytes past `limit` (the quota or a declared range's end).
final class UploadBodyReceiver: RequestBodyReceiver, @unchecked Sendable {
    let session: UploadSession
    let limit: Int64
    private let done: @Sendable (UploadBodyReceiver, RequestBodyError?) -> Void
    /// The body went past `limit`.
    private(set) var exceeded = false

    init(_ session: UploadSession, limit: Int64, done: @escaping @Sendable (UploadBodyReceiver, RequestBodyError?) -> Void) {
        self.session = session
        self.limit = limit
        self.done = done
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard session.writer.received + Int64(bytes.count) <= limit else {
            exceeded = true
            return false
        }
        return session.writer.append(bytes)
    }

    func finish(_ error: RequestBodyError?) { done(self, error) }
}

/// A small body read whole into memory (a manifest), up to `limit` bytes.
final class CollectedBody: RequestBodyReceiver, @unchecked Sendable {
    private(set) var bytes: [UInt8] = []
    let limit: Int
    private(set) var exceeded = false
    private let done: @Sendable (CollectedBody, RequestBodyError?) -> Void

    init(limit: Int, done: @escaping @Sendable (CollectedBody, RequestBodyError?) -> Void) {
        self.limit = limit
        self.done = done
    }

    func receive(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count + chunk.count <= limit else {
            exceeded = true
            return false
        }
        bytes.append(contentsOf: chunk)
        return true
    }

    func finish(_ error: RequestBodyError?) { done(self, error) }
}
