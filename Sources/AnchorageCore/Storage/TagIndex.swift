import Foundation
import Synchronization

/// What a tag pointed to when last asked upstream.
struct TagRecord: Sendable, Equatable {
    let digest: Digest
    let mediaType: String
    /// Unix ms of the last successful upstream check.
    let checkedAt: Int64
    /// The `checkedAt` the tag's file holds (it is rewritten lazily);
    /// `unwritten` while the record is only in memory.
    var persistedAt: Int64
    static let unwritten = Int64.min

    init(digest: Digest, mediaType: String, checkedAt: Int64) {
        self.digest = digest
        self.mediaType = mediaType
        self.checkedAt = checkedAt
        persistedAt = checkedAt
    }

    static func == (a: TagRecord, b: TagRecord) -> Bool {
        a.digest == b.digest && a.mediaType == b.mediaType && a.checkedAt == b.checkedAt
    }
}

/// Tag → digest records, one small file per tag (atomic rewrite), with an
/// in-memory copy so a fresh tag costs no disk read.
final class TagIndex: Sendable {
    let layout: CacheLayout
    private let memo = Mutex<[String: TagRecord]>([:])

    init(layout: CacheLayout) { self.layout = layout }

    func get(upstream: String, name: RepositoryName, tag: Tag) -> TagRecord? {
        let path = layout.tag(upstream: upstream, name: name, tag: tag)
        if let r = memo.withLock({ $0[path] }) { return r }
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, let d = Digest(lines[0]), let at = Int64(lines[2]) else { return nil }
        let r = TagRecord(digest: d, mediaType: String(lines[1]), checkedAt: at)
        memo.withLock { $0[path] = r }
        return r
    }

    /// The record if it is in memory; never touches the disk.
    func memoized(upstream: String, name: RepositoryName, tag: Tag) -> TagRecord? {
        let path = layout.tag(upstream: upstream, name: name, tag: tag)
        return memo.withLock { $0[path] }
    }

    /// Makes the record visible in memory at once, before its file (and its
    /// manifest's) are written: the request that follows a fetch finds the
    /// tag. The `put` that follows writes the file.
    func remember(upstream: String, name: RepositoryName, tag: Tag, record: TagRecord) {
        var r = record
        r.persistedAt = TagRecord.unwritten
        memo.withLock { $0[layout.tag(upstream: upstream, name: name, tag: tag)] = r }
    }

    func put(upstream: String, name: RepositoryName, tag: Tag, record: TagRecord) {
        let path = layout.tag(upstream: upstream, name: name, tag: tag)
        // A revalidation that found the same digest only moves `checkedAt`:
        // losing that in a crash costs one extra check, so it is written at
        // most once a minute and without fsync. A new digest is written durably.
        enum Write { case none, lazy, durable }
        let write = memo.withLock { m -> Write in
            var r = record
            defer { m[path] = r }
            guard let p = m[path], p.persistedAt != TagRecord.unwritten, p.digest == record.digest, p.mediaType == record.mediaType else { return .durable }
            if record.checkedAt - p.persistedAt < 60_000 {
                r.persistedAt = p.persistedAt
                return .none
            }
            return .lazy
        }
        if write != .none {
            _ = writeFileAtomically(path, TagIndex.encode(record), durable: write == .durable)
        }
    }

    /// Removes a tag's record (an evicted image): the next pull asks the upstream.
    func forget(upstream: String, name: RepositoryName, tag: Tag) -> Bool {
        let path = layout.tag(upstream: upstream, name: name, tag: tag)
        let known = memo.withLock { $0.removeValue(forKey: path) } != nil
        return unlink(path) == 0 || known
    }

    private static func encode(_ r: TagRecord) -> [UInt8] {
        Array("\(r.digest)\n\(r.mediaType)\n\(r.checkedAt)\n".utf8)
    }
}
