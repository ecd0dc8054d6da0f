import Foundation
import Synchronization

/// What a tag pointed to when last asked upstream.
struct TagRecord: Sendable, Equatable {
    let digest: Digest
    let mediaType: String
    /// Unix ms of the last successful upstream check.
    let checkedAt: Int64
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

    func put(upstream: String, name: RepositoryName, tag: Tag, record: TagRecord) {
        let path = layout.tag(upstream: upstream, name: name, tag: tag)
        memo.withLock { $0[path] = record }
        _ = writeFileAtomically(path, Array("\(record.digest)\n\(record.mediaType)\n\(record.checkedAt)\n".utf8))
    }
}
