import Dispatch
import Foundation
import Synchronization

/// The object store as the second tier behind this node's disk: a local
/// miss asks the bucket before the upstream, and a blob fetched from the
/// upstream is copied into the bucket once it is verified and committed
/// locally, so that every node sharing the bucket finds it there.
///
/// Blobs are written once under their digest (`If-None-Match: *`; a 412
/// means another node stored it first, which is success) and signed with
/// their own SHA-256, so the store itself refuses a body that does not hash
/// to its name. Whatever comes back from the store is verified again on its
/// way into the local tier, as bytes from an upstream are.
final class ObjectStoreTier: Sendable {
    let s3: S3Client
    private let local: FileBlobStore
    private let uploads = DispatchQueue(label: "anchorage.store-upload")
    /// Copies waiting or running; past `maxQueued` a copy is skipped (the
    /// blob stays local and the next node that misses it stores it).
    private let queued = Atomic<Int>(0)
    static let maxQueued = 256
    private let health = Mutex<Health>(Health())
    let counters: Counters

    struct Health: Sendable {
        var down: String?
        var since: Date?
    }

    init(s3: S3Client, local: FileBlobStore, counters: Counters) {
        self.s3 = s3
        self.local = local
        self.counters = counters
    }

    static func blobKey(_ d: Digest) -> String { "blobs/\(d.algorithm.rawValue)/\(d.hex)" }

    /// Why the store is unusable now, or nil when its last answer was good.
    var problem: String? { health.withLock { $0.down } }

    /// Failed requests so far: a caller that must not act on a partial
    /// answer (the collector's mark) compares it before and after.
    var failures: Int { failureCount.load(ordering: .relaxed) }
    private let failureCount = Atomic<Int>(0)

    func record(_ problem: String?) {
        if problem != nil { failureCount.add(1, ordering: .relaxed) }
        let changed = health.withLock { h -> Bool in
            guard h.down != problem else { return false }
            h.down = problem
            h.since = problem == nil ? nil : Date()
            return true
        }
        guard changed else { return }
        if let problem {
            Log.error("object store unavailable: serving from the local tier and the upstream", ["store": s3.config.endpoint, "error": problem])
            recheckLater()
        } else {
            Log.info("object store available again", ["store": s3.config.endpoint])
        }
    }

    /// While the store is down, asks it again every few seconds, so that
    /// `/readyz` and the metrics see it come back without waiting for a miss.
    private func recheckLater() {
        DispatchQueue.global().asyncAfter(deadline: .now() + ObjectStoreTier.recheckSeconds) { [self] in
            guard problem != nil else { return }
            if check() != .ok, problem != nil { recheckLater() }
        }
    }
    static let recheckSeconds = 3.0

    enum Lookup {
        /// The store had it; the transfer's outcome (the sink got the body).
        case found(Result<ResponseHead, UpstreamError>)
        /// The store does not have it (or cannot be asked): try the upstream.
        case absent
    }

    /// Streams `d` from the store into `sink` when the store has it.
    func fetch(_ d: Digest, into sink: TransferSink) -> Lookup { fetch(key: ObjectStoreTier.blobKey(d), into: sink) }

    /// Streams the object `key` into `sink` when the store has it; only a
    /// 200's body reaches the sink.
    func fetch(key: String, into sink: TransferSink) -> Lookup {
        let gate = OnlySuccessSink(sink)
        let result = s3.request("GET", key: key, sink: gate)
        switch result {
        case .failure(let e):
            record("\(e)")
            // Bytes already went to the client: the fetch failed midway and
            // must fail (the client retries); nothing reached it otherwise.
            return gate.status == 200 ? .found(.failure(e)) : .absent
        case .success(let head):
            switch head.status {
            case 200:
                record(nil)
                counters.storeTierHits.add(1, ordering: .relaxed)
                return .found(.success(head))
            case 404:
                record(nil)
                return .absent
            default:
                record(S3Client.errorText(status: head.status, body: gate.errorBody))
                return .absent
            }
        }
    }

    /// The stored object's size (a HEAD), or nil when the store does not
    /// have it or cannot be asked.
    func size(_ d: Digest) -> Int64? {
        let sink = CollectingSink(limit: 0)
        switch s3.request("HEAD", key: ObjectStoreTier.blobKey(d), sink: sink) {
        case .failure(let e):
            record("\(e)")
            return nil
        case .success(let head):
            if head.status == 200 || head.status == 404 { record(nil) }
            return head.status == 200 ? head.headers["Content-Length"].flatMap { Int64($0) } : nil
        }
    }

    /// Where a client can fetch `d` from the bucket itself: a presigned URL
    /// valid for `redirectSeconds`, when `redirect = presigned` and the
    /// bucket has it.
    func redirectURL(_ d: Digest) -> String? {
        guard s3.config.redirect, size(d) != nil else { return nil }
        return s3.presignedURL(ObjectStoreTier.blobKey(d), expires: ObjectStoreTier.redirectSeconds)
    }
    static let redirectSeconds = 20 * 60

    /// A small object (a manifest) read whole, with the head it came with;
    /// nil when the store does not have it (or cannot be asked). The
    /// caller verifies it.
    func fetchWhole(_ d: Digest, limit: Int) -> (head: ResponseHead, sink: CollectingSink)? {
        let sink = CollectingSink(limit: limit)
        guard case .found(.success(let head)) = fetch(d, into: sink), !sink.overflowed else { return nil }
        return (head, sink)
    }

    /// Copies a blob that is now in the local tier into the store, in the
    /// background; `contentType` is kept with it (a manifest's media type).
    func copyToStore(_ d: Digest, contentType: String? = nil) {
        guard queued.add(1, ordering: .relaxed).newValue <= ObjectStoreTier.maxQueued else {
            queued.subtract(1, ordering: .relaxed)
            Log.warn("object store copy skipped: too many waiting", ["digest": d.description])
            return
        }
        uploads.async { [self] in
            defer { queued.subtract(1, ordering: .relaxed) }
            _ = put(d, contentType: contentType)
        }
    }

    /// Stores the local blob `d` under its digest; true when the store has it.
    @discardableResult
    func put(_ d: Digest, contentType: String? = nil) -> Bool {
        guard case .file(let file, let size)? = local.open(d) else { return false }
        switch putOnce(ObjectStoreTier.blobKey(d), file: file, size: size, sha256: d.algorithm == .sha256 ? d.hex : nil, contentType: contentType) {
        case .success(let stored): return stored
        case .failure(let e):
            Log.warn("object store copy failed", ["digest": d.description, "error": "\(e)"])
            return false
        }
    }

    /// Deletes the stored object of `d` (its bytes did not hash to `d`).
    func remove(_ d: Digest) {
        let deleted = (try? delete(ObjectStoreTier.blobKey(d)).get()) != nil
        Log.error("object store held bytes that do not match their digest: object deleted", ["digest": d.description, "deleted": "\(deleted)"])
    }

    /// Waits until every queued copy has been tried (for `sync` and tests).
    func drain() { uploads.sync {} }

    /// Lists one key of the bucket. At start-up, wrong credentials, a
    /// missing bucket or a skewed clock (`refused`) are errors the operator
    /// must fix; a store that does not answer is reported and the node
    /// starts anyway.
    func check() -> StartupCheck {
        let sink = CollectingSink(limit: 64 * 1024)
        switch s3.request("GET", key: nil, query: [("list-type", "2"), ("max-keys", "1")], sink: sink) {
        case .failure(let e):
            record("\(e)")
            return .unreachable("\(e)")
        case .success(let head) where head.status == 200:
            record(nil)
            return .ok
        case .success(let head):
            let why = S3Client.errorText(status: head.status, body: sink.body)
            record(why)
            // A store that is overloaded or restarting is not a setting to fix.
            return head.status >= 500 ? .unreachable(why) : .refused(why)
        }
    }

    enum StartupCheck: Equatable {
        case ok
        case unreachable(String)
        case refused(String)
    }
}
