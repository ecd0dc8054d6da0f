import Foundation
import Glibc
import Synchronization

/// Pushed content: blobs and manifests in a content store of their own
/// (never evicted), and per repository the links that say what it holds
/// (`HostedLayout`, kept in `records`). A digest is visible in a repository
/// only through its link, so one repository cannot read another's blobs by
/// guessing digests, while identical layers are stored once.
///
/// With an object store (`shared`), the bucket is the home of both: a blob
/// or manifest is in the bucket before its link is written, the records
/// live there, and the local content is a copy filled on first read, so a
/// push to one node is readable from every other at once.
///
/// Every change of links runs under one lock (`mutate`: a mutex in the
/// process and `flock` on `hosted/lock` across processes), which the
/// collector holds while it removes blobs: a manifest that passed its
/// reference check is stored before any of its blobs can go, and one stored
/// during a collection is seen by its sweep.
final class HostedStore: Sendable {
    let layout: HostedLayout
    /// This node's copy of the content (all of it without an object store).
    let content: FileBlobStore
    let records: any HostedRecords
    /// The bucket several nodes share, when `[storage] backend = s3`.
    let shared: ObjectStoreTier?

    private struct State {
        /// Per namespace: each linked digest's size and how many links name it.
        var usage: [String: [Digest: (size: Int64, links: Int)]]?
    }
    private let state = Mutex(State())
    private let mutations = NSLock()
    private let lockFile: Int32

    /// `spaceFrom`: the cache, evicted when the shared disk is full.
    init(cacheRoot: String, spaceFrom cache: CacheIndex?, shared: ObjectStoreTier? = nil) {
        layout = HostedLayout(cacheRoot: cacheRoot)
        let index = CacheIndex(layout: layout.content, maxSize: .max, evicting: false)
        content = FileBlobStore(layout: layout.content, index: index, spaceFrom: cache)
        self.shared = shared
        records = shared.map { BucketRecords(store: $0) } ?? DirectoryRecords(root: layout.repositoriesDir)
        makeParentDirectory("\(layout.root)/lock")
        lockFile = Glibc.open("\(layout.root)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    }

    deinit { if lockFile >= 0 { close(lockFile) } }

    /// Runs `body` with link changes excluded elsewhere, in this process
    /// and in any other working on the same directory (`anchorage gc`).
    func mutate<T>(_ body: () throws -> T) rethrows -> T {
        mutations.lock()
        defer { mutations.unlock() }
        if lockFile >= 0 {
            while flock(lockFile, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer { if lockFile >= 0 { flock(lockFile, LOCK_UN) } }
        return try body()
    }

    /// Why hosted content cannot be read or written now (the object store
    /// is down), or nil.
    var unavailable: String? { shared?.problem }

    /// Asks the object store now (one HEAD); why it cannot be used, or nil.
    func probe() -> String? {
        guard let shared, case .failure(let e) = shared.head(HostedLayout.bucketRecords) else { return nil }
        return e.reason
    }

    // MARK: content

    /// Whether the content of `d` is stored (here or in the bucket).
    func hasContent(_ d: Digest) -> Bool {
        if content.contains(d) { return true }
        guard let shared else { return false }
        return (try? shared.head(HostedLayout.bucketBlob(d)).get()) != nil
    }

    func stat(_ d: Digest) -> Int64? {
        if let size = content.stat(d) { return size }
        return (try? shared?.head(HostedLayout.bucketBlob(d)).get())?.size
    }

    /// Opens stored content, copying it from the bucket first when this
    /// node has no copy.
    func open(_ d: Digest) -> StoredBlob? {
        if let blob = content.open(d) { return blob }
        return fetchShared(d) ? content.open(d) : nil
    }

    func readAll(_ d: Digest, limit: Int) -> [UInt8]? {
        if let bytes = content.readAll(d, limit: limit) { return bytes }
        return fetchShared(d) ? content.readAll(d, limit: limit) : nil
    }

    /// Copies `d` from the bucket into the local content, verified as it
    /// is written; false when the bucket does not have it whole and right.
    private func fetchShared(_ d: Digest) -> Bool {
        guard shared != nil, let writer = content.makeWriter(d.algorithm, followed: false) else { return false }
        let sink = WriterSink(writer)
        guard case .success(let head) = fetchShared(d, into: sink), !sink.failed else {
            writer.cancel()
            return false
        }
        guard writer.commit(as: d) else {
            Log.error("object store held hosted bytes that do not match their digest", ["digest": d.description])
            return false
        }
        if let type = head.headers["Content-Type"], type.contains("manifest") || type.contains("index") {
            content.setMediaType(type, for: d)
        }
        return true
    }

    /// Streams `d` from the bucket into `sink` (a shared fetch into the
    /// local content, which verifies it); only a 200's body reaches it.
    func fetchShared(_ d: Digest, into sink: TransferSink) -> Result<ResponseHead, UpstreamError> {
        guard let shared, case .found(let result) = shared.fetch(key: HostedLayout.bucketBlob(d), into: sink) else { return .failure(.notFound) }
        return result
    }

    /// Puts local content into the bucket (no-op without one); true when
    /// the bucket holds it. Done before anything links it, so a link seen
    /// by any node names content that is there.
    func share(_ d: Digest, mediaType: String? = nil) -> Bool {
        guard let shared else { return true }
        guard case .file(let file, let size)? = content.open(d) else { return false }
        let stored = shared.putOnce(HostedLayout.bucketBlob(d), file: file, size: size,
                                    sha256: d.algorithm == .sha256 ? d.hex : nil, contentType: mediaType)
        return (try? stored.get()) == true
    }

    // MARK: links

    func hasLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        records.exists(layout.layer(ns, name, d)) && hasContent(d)
    }

    func hasRevision(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        records.exists(layout.revision(ns, name, d)) && hasContent(d)
    }

    /// Links a stored blob into a repository (an upload's commit, a mount).
    func linkLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        mutate { link(layout.layer(ns, name, d), ns, d) }
    }

    /// Takes a verified blob from the cache (`path`, named by its digest):
    /// a hard link when both are on one filesystem (no copy; the cache may
    /// evict its name later), else a copy renamed into place.
    func adopt(_ d: Digest, from path: String) -> Bool {
        guard !content.contains(d) else { return share(d) }
        let dest = layout.content.blob(d)
        makeParentDirectory(dest)
        if Glibc.link(path, dest) == 0 || errno == EEXIST { return share(d) }
        let tmp = layout.content.newTempPath()
        do {
            try FileManager.default.copyItem(atPath: path, toPath: tmp)
        } catch {
            unlink(tmp)
            return false
        }
        guard rename(tmp, dest) == 0 else {
            unlink(tmp)
            return false
        }
        return share(d)
    }

    /// Unlinks a blob from a repository; false when it was not linked.
    func unlinkLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        mutate { unlinkRecord(layout.layer(ns, name, d), ns, d) }
    }

    enum ManifestStored: Equatable {
        case stored
        /// The tag is immutable and names another manifest.
        case tagImmutable(Digest)
        case failed
    }

    /// Stores a verified manifest and links it (and its tag, and its
    /// subject's referrer entry). Run inside `mutate`, after the reference
    /// check, so no collection removes what it names in between.
    func storeManifest(_ ns: String, _ name: RepositoryName, _ bytes: [UInt8], digest: Digest, mediaType: String,
                       tag: Tag?, immutable: Bool = false, subject: Digest?, pushedBy: String?) -> ManifestStored {
        if let tag, immutable, let current = resolve(ns, name, tag), current != digest { return .tagImmutable(current) }
        guard content.put(bytes, digest: digest) else { return .failed }
        content.setMediaType(mediaType, for: digest)
        guard share(digest, mediaType: mediaType) else { return .failed }
        // A revision stored again is linked again: a collection running now
        // sees it as new (by its time) and keeps what it names.
        guard link(layout.revision(ns, name, digest), ns, digest, note: Array((pushedBy ?? "").utf8.prefix(256))) else { return .failed }
        if let subject {
            _ = records.link(layout.referrer(ns, name, subject: subject, digest), note: [])
        }
        guard let tag else { return .stored }
        return setTag(ns, name, tag, digest, immutable: immutable)
    }

    /// Points a tag at `digest`; with an object store, only over the
    /// version just read, so two nodes setting one tag at once never
    /// overwrite each other unseen (the loser reads again and decides).
    private func setTag(_ ns: String, _ name: RepositoryName, _ tag: Tag, _ digest: Digest, immutable: Bool) -> ManifestStored {
        let key = layout.tag(ns, name, tag)
        for _ in 0..<8 {
            let current = records.read(key)
            if immutable, let c = current.flatMap(HostedStore.digest), c != digest { return .tagImmutable(c) }
            switch records.replace(key, Array(digest.description.utf8), ifVersion: current?.version) {
            case .replaced: return .stored
            case .failed: return .failed
            case .conflict: continue
            }
        }
        return .failed
    }

    private static func digest(_ r: HostedRecord) -> Digest? {
        Digest(String(decoding: r.bytes, as: UTF8.self).trimmed(" \n"))
    }

    func resolve(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Digest? {
        records.read(layout.tag(ns, name, tag)).flatMap(HostedStore.digest)
    }

    func tags(_ ns: String, _ name: RepositoryName) -> [Tag] {
        records.list(layout.tagsDir(ns, name)).compactMap { Tag($0) }
    }

    /// When the tag was last set (for retention's "newest").
    func tagTime(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Int64 {
        records.time(layout.tag(ns, name, tag)) ?? 0
    }

    func revisionTime(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Int64 {
        records.time(layout.revision(ns, name, d)) ?? 0
    }

    /// Who pushed a manifest (the signed-in user, or "sync"), if recorded.
    func revisionPusher(_ ns: String, _ name: RepositoryName, _ d: Digest) -> String? {
        guard let r = records.read(layout.revision(ns, name, d)), !r.bytes.isEmpty, r.bytes.count <= 256 else { return nil }
        return String(decoding: r.bytes, as: UTF8.self)
    }

    func revisions(_ ns: String, _ name: RepositoryName) -> [Digest] {
        HostedLayout.digests(under: layout.revisionsDir(ns, name), in: records)
    }

    func layers(_ ns: String, _ name: RepositoryName) -> [Digest] {
        HostedLayout.digests(under: layout.layersDir(ns, name), in: records)
    }

    func deleteTag(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Bool {
        mutate { records.remove(layout.tag(ns, name, tag)) }
    }

    /// Removes a manifest from a repository with every tag naming it and
    /// its referrer entry; the bytes stay until a collection finds them
    /// unreferenced. False when the repository did not hold it.
    func deleteManifest(_ ns: String, _ name: RepositoryName, _ d: Digest, subject: Digest?) -> Bool {
        mutate {
            guard unlinkRecord(layout.revision(ns, name, d), ns, d) else { return false }
            for t in tags(ns, name) where resolve(ns, name, t) == d { _ = records.remove(layout.tag(ns, name, t)) }
            if let subject { _ = records.remove(layout.referrer(ns, name, subject: subject, d)) }
            return true
        }
    }

    /// Manifests in this repository whose subject is `subject`.
    func referrers(_ ns: String, _ name: RepositoryName, subject: Digest) -> [Digest] {
        records.list(layout.referrersDir(ns, name, subject: subject)).compactMap { f in
            f.firstIndex(of: "-").flatMap { Digest("\(f[..<$0]):\(f[f.index(after: $0)...])") }
        }
    }

    /// Every repository of a namespace (names without the namespace).
    func repositories(_ ns: String) -> [RepositoryName] {
        var out: [RepositoryName] = []
        func walk(_ dir: String, _ prefix: String) {
            let entries = records.list(dir)
            if entries.contains("_manifests") || entries.contains("_layers"), let n = RepositoryName(prefix) { out.append(n) }
            for e in entries where !e.hasPrefix("_") {
                walk("\(dir)/\(e)", prefix.isEmpty ? e : "\(prefix)/\(e)")
            }
        }
        walk(ns, "")
        return out
    }

    // MARK: quota

    /// Bytes the namespace holds: each linked blob and manifest once.
    func usage(_ ns: String) -> Int64 {
        withUsage { u in u[ns]?.values.reduce(0) { $0 + $1.size } ?? 0 }
    }

    /// Counts usage afresh at the next use: another process (`anchorage gc
    /// --hosted`, `anchorage sync`) or another node may have changed links.
    func recountUsage() {
        state.withLock { $0.usage = nil }
    }

    private func withUsage<T>(_ body: (inout [String: [Digest: (size: Int64, links: Int)]]) -> T) -> T {
        if let r = state.withLock({ s -> T? in s.usage == nil ? nil : body(&s.usage!) }) { return r }
        // Counted under the link lock, so no link comes or goes mid-count.
        return mutate {
            let scanned = state.withLock { $0.usage } == nil ? scanUsage() : nil
            return state.withLock { s in
                if s.usage == nil { s.usage = scanned ?? [:] }
                return body(&s.usage!)
            }
        }
    }

    private func scanUsage() -> [String: [Digest: (size: Int64, links: Int)]] {
        var all: [String: [Digest: (size: Int64, links: Int)]] = [:]
        for ns in namespaces() {
            var u: [Digest: (size: Int64, links: Int)] = [:]
            for repo in repositories(ns) {
                for d in layers(ns, repo) + revisions(ns, repo) {
                    let size = u[d]?.size ?? stat(d) ?? 0
                    u[d] = (size, (u[d]?.links ?? 0) + 1)
                }
            }
            all[ns] = u
        }
        return all
    }

    // MARK: collection support

    func layerTime(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Int64 {
        records.time(layout.layer(ns, name, d)) ?? 0
    }

    /// Every stored blob with its size and when it was written: the
    /// bucket's when there is one (what every node reads), else the local
    /// content. Nothing when the bucket cannot be listed.
    func forEachStored(_ body: (Digest, Int64, Int64) -> Void) {
        guard let shared else {
            return content.forEach { d, size in body(d, size, fileMillis(layout.content.blob(d)) ?? 0) }
        }
        guard case .success(let l) = shared.list(HostedLayout.bucketBlobs, delimited: false) else { return }
        for o in l.objects {
            if let d = Digest(o.key.dropFirst(HostedLayout.bucketBlobs.count).replacingOccurrences(of: "/", with: ":")) { body(d, o.size, o.millis) }
        }
    }

    /// Removes a blob no manifest references, with the links naming it.
    /// Only inside `mutate`.
    func removeUnreferenced(_ d: Digest, links: [(ns: String, name: RepositoryName)]) {
        for l in links { unlinkRecord(layout.layer(l.ns, l.name, d), l.ns, d) }
        _ = shared?.delete(HostedLayout.bucketBlob(d))
        content.delete(d)
    }

    /// Removes local copies of content the bucket no longer holds (another
    /// node collected it), older than `graceMillis` (younger ones may be a
    /// push still on its way into the bucket). Without a bucket, nothing.
    func trimLocalCopies(graceMillis: Int64, now: Int64 = CacheIndex.nowMillis()) -> Int {
        guard let shared, case .success(let l) = shared.list(HostedLayout.bucketBlobs, delimited: false) else { return 0 }
        let kept = Set(l.objects.map(\.key))
        var stale: [Digest] = []
        content.forEach { d, _ in
            guard !kept.contains(HostedLayout.bucketBlob(d)), let t = fileMillis(layout.content.blob(d)), now - t >= graceMillis else { return }
            stale.append(d)
        }
        for d in stale { content.delete(d) }
        return stale.count
    }

    /// Every hosted namespace with records.
    func namespaces() -> [String] { records.list("").filter { !$0.hasPrefix("_") && !$0.hasPrefix(".") } }

    // MARK: records

    private func link(_ key: String, _ ns: String, _ d: Digest, note: [UInt8] = []) -> Bool {
        guard let created = records.link(key, note: note) else { return false }
        if created {
            let size = stat(d) ?? 0
            // Counted only if counted already: a count made later sees the record.
            state.withLock { s in
                guard s.usage != nil else { return }
                let e = s.usage?[ns]?[d]
                s.usage?[ns, default: [:]][d] = (size, (e?.links ?? 0) + 1)
            }
        }
        return true
    }

    @discardableResult
    private func unlinkRecord(_ key: String, _ ns: String, _ d: Digest) -> Bool {
        guard records.remove(key) else { return false }
        state.withLock { s in
            guard let e = s.usage?[ns]?[d] else { return }
            s.usage?[ns]?[d] = e.links > 1 ? (e.size, e.links - 1) : nil
        }
        return true
    }
}

/// Creates an empty file (and its directories): true when created, false
/// when it existed, nil when it could not be made.
func createEmptyFile(_ path: String) -> Bool? {
    makeParentDirectory(path)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    if fd < 0 { return errno == EEXIST ? false : nil }
    close(fd)
    return true
}

/// A file's modification time in unix milliseconds.
func fileMillis(_ path: String) -> Int64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
}

/// Writes a body into a `BlobWriter` (behind `OnlySuccessSink`, which
/// passes only a 200's body).
final class WriterSink: TransferSink {
    private let writer: BlobWriter
    /// A write failed (the disk).
    private(set) var failed = false

    init(_ writer: BlobWriter) { self.writer = writer }

    func begin(status: Int, headers: HTTPHeaders) -> Bool { true }

    func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        if !writer.append(chunk) { failed = true }
        return !failed
    }
}
