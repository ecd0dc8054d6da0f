import Glibc

/// One record's bytes, its version (for a conditional replace) and when it
/// was last written.
struct HostedRecord: Sendable {
    let bytes: [UInt8]
    let version: String
    let millis: Int64
}

enum ReplaceOutcome: Sendable, Equatable {
    case replaced
    /// Someone else changed it since it was read: read again and decide.
    case conflict
    case failed
}

/// The records that say what hosted repositories hold (the links, tags and
/// referrer entries of `HostedLayout`): small named objects with the time
/// each was last written. On one machine they are files
/// (`DirectoryRecords`); with an object store they are objects in the
/// bucket (`BucketRecords`), so that every node sees the same repositories.
/// Keys are relative paths with `/` between levels.
protocol HostedRecords: Sendable {
    func exists(_ key: String) -> Bool
    func read(_ key: String) -> HostedRecord?
    /// Writes a link with a short note; true when it is new, false when it
    /// existed (its time is renewed), nil when it could not be written.
    func link(_ key: String, note: [UInt8]) -> Bool?
    /// Replaces a record if it is still at `version` (nil: if absent).
    func replace(_ key: String, _ bytes: [UInt8], ifVersion version: String?) -> ReplaceOutcome
    /// False when there was nothing to remove.
    func remove(_ key: String) -> Bool
    func time(_ key: String) -> Int64?
    /// The names one level below `dir`, sorted.
    func list(_ dir: String) -> [String]
}

/// Records as files under one directory. Changes are serialised by
/// `HostedStore.mutate` (a lock across processes), so a replace needs no
/// version: the reader holds the lock.
struct DirectoryRecords: HostedRecords {
    let root: String

    private func path(_ key: String) -> String { "\(root)/\(key)" }

    func exists(_ key: String) -> Bool { access(path(key), F_OK) == 0 }

    func read(_ key: String) -> HostedRecord? {
        let p = path(key)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let file = OpenFile(fd: fd)
        guard let bytes = file.readAll(limit: 64 * 1024) else { return nil }
        return HostedRecord(bytes: bytes, version: "", millis: fileMillis(p) ?? 0)
    }

    func link(_ key: String, note: [UInt8]) -> Bool? {
        let p = path(key)
        guard let created = createEmptyFile(p) else { return nil }
        // Linked again: its time says so, for the collector's grace period.
        if !created { utimensat(AT_FDCWD, p, nil, 0) }
        if !note.isEmpty {
            let fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC)
            if fd >= 0 {
                _ = note.withUnsafeBytes { writeAll(fd, $0) }
                close(fd)
            }
        }
        return created
    }

    func replace(_ key: String, _ bytes: [UInt8], ifVersion version: String?) -> ReplaceOutcome {
        let p = path(key)
        makeParentDirectory(p)
        return writeFileAtomically(p, bytes) ? .replaced : .failed
    }

    func remove(_ key: String) -> Bool { unlink(path(key)) == 0 }

    func time(_ key: String) -> Int64? { fileMillis(path(key)) }

    func list(_ dir: String) -> [String] { listDirectory(path(dir)) }
}

/// Records as objects under `hosted/repositories/` in the shared bucket.
/// A tag is replaced with `If-Match` on the ETag it was read with (or
/// `If-None-Match: *` when it was absent), so two nodes setting one tag
/// never overwrite each other unseen. A failed request is counted against
/// the store's health (`ObjectStoreTier.problem`), which turns the caller's
/// "not found" into 503.
struct BucketRecords: HostedRecords {
    let store: ObjectStoreTier

    private func key(_ k: String) -> String { HostedLayout.bucketRecords + k }

    func exists(_ k: String) -> Bool { (try? store.head(key(k)).get()) != nil }

    func read(_ k: String) -> HostedRecord? {
        guard case .success(let found?) = store.get(key(k), limit: 64 * 1024) else { return nil }
        return HostedRecord(bytes: found.bytes, version: found.info.etag, millis: found.info.millis)
    }

    func link(_ k: String, note: [UInt8]) -> Bool? {
        switch store.put(key(k), note, condition: .absent) {
        case .failure: return nil
        case .success(true): return true
        case .success(false):
            // There already: written again, so its time is renewed.
            return (try? store.put(key(k), note).get()) == true ? false : nil
        }
    }

    func replace(_ k: String, _ bytes: [UInt8], ifVersion version: String?) -> ReplaceOutcome {
        switch store.put(key(k), bytes, condition: version.map { .matching($0) } ?? .absent) {
        case .failure: .failed
        case .success(true): .replaced
        case .success(false): .conflict
        }
    }

    func remove(_ k: String) -> Bool {
        guard exists(k) else { return false }
        return (try? store.delete(key(k)).get()) != nil
    }

    func time(_ k: String) -> Int64? { (try? store.head(key(k)).get())?.millis }

    func list(_ dir: String) -> [String] {
        let prefix = dir.isEmpty ? key("") : key(dir) + "/"
        guard case .success(let l) = store.list(prefix, delimited: true) else { return [] }
        let names = l.objects.map { String($0.key.dropFirst(prefix.count)) }
            + l.prefixes.map { String($0.dropFirst(prefix.count).dropLast()) }
        return names.filter { !$0.isEmpty }.sorted()
    }
}
