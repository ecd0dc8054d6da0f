import Foundation
import Glibc
import Synchronization

/// The local disk as a `BlobStore`: content-addressed files under
/// `CacheLayout`, with LRU accounting in `CacheIndex`. A file at
/// `layout.blob(d)` always holds bytes whose digest is `d`: the only way in
/// is `commit` (from a verified `BlobWriter`) or `put`, by rename from a
/// temp file in the same filesystem.
final class FileBlobStore: BlobStore {
    let layout: CacheLayout
    let index: CacheIndex
    /// Media types of manifests, memoised (they never change for a digest).
    private let mediaTypes = Mutex<[Digest: String]>([:])
    /// What is evicted when the disk is full: this store's own index, or
    /// for hosted content (never evicted) the cache beside it.
    private let spaceFrom: CacheIndex?

    init(layout: CacheLayout, index: CacheIndex, spaceFrom: CacheIndex? = nil) {
        self.layout = layout
        self.index = index
        self.spaceFrom = index.evicting ? index : spaceFrom
        try? FileManager.default.createDirectory(atPath: layout.tmpDir, withIntermediateDirectories: true)
        try? FileManager.default.createDirectory(atPath: layout.blobsDir, withIntermediateDirectories: true)
    }

    // MARK: BlobStore

    func stat(_ d: Digest) -> Int64? {
        var st = Glibc.stat()
        return lstat(layout.blob(d), &st) == 0 ? Int64(st.st_size) : nil
    }

    /// Opens a cached blob for reading and marks it used; nil on a miss.
    func open(_ d: Digest) -> StoredBlob? {
        guard let f = OpenFile.openForReading(layout.blob(d)) else { return nil }
        touch(d)
        return .file(f, size: f.size)
    }

    func makeWriter(_ algorithm: Digest.Algorithm, followed: Bool) -> BlobWriter? {
        BlobWriter(store: self, algorithm: algorithm, followed: followed)
    }

    func delete(_ d: Digest) {
        index.remove(d)
        unlink(layout.blob(d))
        unlink(layout.mediaType(d))
    }

    func forEach(_ body: (Digest, Int64) -> Void) {
        layout.forEachBlob { d, path in
            var st = Glibc.stat()
            if let d, lstat(path, &st) == 0 { body(d, Int64(st.st_size)) }
        }
    }

    func contains(_ d: Digest) -> Bool {
        access(layout.blob(d), F_OK) == 0
    }

    /// Makes a verified temp file visible under its digest (`BlobWriter`).
    /// The data is fsync'd before the rename, so a crash leaves either
    /// nothing or the complete file.
    func commit(tempPath: String, file: OpenFile, digest: Digest, size: Int64) -> Bool {
        guard fsync(file.fd) == 0 else { return false }
        let dest = layout.blob(digest)
        makeParentDirectory(dest)
        guard rename(tempPath, dest) == 0 else { return false }
        index.add(digest, size: size)
        return true
    }

    /// Stores a small verified body (a manifest) under its digest.
    func put(_ bytes: [UInt8], digest: Digest) -> Bool {
        if contains(digest) { return true }
        guard writeFileAtomically(layout.blob(digest), bytes) else { return false }
        index.add(digest, size: Int64(bytes.count))
        return true
    }

    /// Whether `bytes` more could ever fit on this disk: what is free plus
    /// what eviction could free (unpinned cached blobs).
    func couldHold(_ bytes: Int64) -> Bool {
        var fs = statvfs()
        guard statvfs(layout.root, &fs) == 0 else { return true }
        let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        let evictable = spaceFrom.map { max(0, $0.totalBytes - $0.pinnedBytes) } ?? 0
        return free + evictable >= bytes
    }

    /// Evicts cached content to free `bytes` on a full disk; the bytes freed.
    func makeRoom(_ bytes: Int64) -> Int64 {
        guard let spaceFrom else { return 0 }
        return spaceFrom.evict(downTo: max(0, spaceFrom.totalBytes - bytes))
    }

    func readAll(_ d: Digest, limit: Int) -> [UInt8]? {
        open(d)?.readAll(limit: limit)
    }

    /// Marks a use served without opening the file (a manifest from memory).
    func touch(_ d: Digest) {
        index.touch(d, path: layout.blob(d))
    }

    func mediaType(_ d: Digest) -> String? {
        if let t = mediaTypes.withLock({ $0[d] }) { return t }
        guard let data = FileManager.default.contents(atPath: layout.mediaType(d)),
              let s = String(data: data, encoding: .utf8), !s.isEmpty else { return nil }
        mediaTypes.withLock { m in
            if m.count > 100_000 { m.removeAll() }
            m[d] = s
        }
        return s
    }

    func setMediaType(_ type: String, for d: Digest) {
        _ = writeFileAtomically(layout.mediaType(d), Array(type.utf8))
    }

    /// Removes leftover temp files of processes that are gone (a crash or
    /// kill -9): they were never visible, so nothing is lost.
    func removeStaleTempFiles() -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: layout.tmpDir) else { return 0 }
        var removed = 0
        let me = getpid()
        for n in names {
            let pid = n.split(separator: "-").first.flatMap { Int32($0) } ?? 0
            let alive = pid > 0 && pid != me && (kill(pid, 0) == 0 || errno == EPERM)
            if !alive {
                unlink("\(layout.tmpDir)/\(n)")
                removed += 1
            }
        }
        return removed
    }
}
