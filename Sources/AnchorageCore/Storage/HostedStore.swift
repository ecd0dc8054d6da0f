import Foundation
import Glibc
import Synchronization

/// Pushed content: blobs and manifests in a content store of their own
/// (never evicted), and per repository the links that say what it holds
/// (`HostedLayout`). A digest is visible in a repository only through its
/// link, so one repository cannot read another's blobs by guessing digests,
/// while identical layers are stored once.
///
/// Every change of links runs under one lock (`mutate`: a mutex in the
/// process and `flock` on `hosted/lock` across processes), which the
/// collector holds while it removes blobs: a manifest that passed its
/// reference check is stored before any of its blobs can go, and one stored
/// during a collection is seen by its sweep.
final class HostedStore: Sendable {
    let layout: HostedLayout
    let content: FileBlobStore

    private struct State {
        /// Per namespace: each linked digest's size and how many links name it.
        var usage: [String: [Digest: (size: Int64, links: Int)]]?
    }
    private let state = Mutex(State())
    private let mutations = NSLock()
    private let lockFile: Int32

    /// `spaceFrom`: the cache, evicted when the shared disk is full.
    init(cacheRoot: String, spaceFrom cache: CacheIndex?) {
        layout = HostedLayout(cacheRoot: cacheRoot)
        let index = CacheIndex(layout: layout.content, maxSize: .max, evicting: false)
        content = FileBlobStore(layout: layout.content, index: index, spaceFrom: cache)
        makeParentDirectory("\(layout.root)/lock")
        lockFile = open("\(layout.root)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
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

    // MARK: links

    func hasLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        access(layout.layer(ns, name, d), F_OK) == 0 && content.contains(d)
    }

    func hasRevision(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        access(layout.revision(ns, name, d), F_OK) == 0 && content.contains(d)
    }

    /// Links a stored blob into a repository (an upload's commit, a mount).
    func linkLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        mutate { link(layout.layer(ns, name, d), ns, d) }
    }

    /// Takes a verified blob from the cache (`path`, named by its digest):
    /// a hard link when both are on one filesystem (no copy; the cache may
    /// evict its name later), else a copy renamed into place.
    func adopt(_ d: Digest, from path: String) -> Bool {
        if content.contains(d) { return true }
        let dest = layout.content.blob(d)
        makeParentDirectory(dest)
        if Glibc.link(path, dest) == 0 || errno == EEXIST { return true }
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
        return true
    }

    /// Unlinks a blob from a repository; false when it was not linked.
    func unlinkLayer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Bool {
        mutate { unlinkFile(layout.layer(ns, name, d), ns, d) }
    }

    /// Stores a verified manifest and links it (and its tag, and its
    /// subject's referrer entry). Run inside `mutate`, after the reference
    /// check, so no collection removes what it names in between.
    func storeManifest(_ ns: String, _ name: RepositoryName, _ bytes: [UInt8], digest: Digest, mediaType: String,
                       tag: Tag?, subject: Digest?, pushedBy: String?) -> Bool {
        guard content.put(bytes, digest: digest) else { return false }
        content.setMediaType(mediaType, for: digest)
        // A revision stored again is linked again: a collection running now
        // sees it as new (by its time) and keeps what it names.
        unlinkFile(layout.revision(ns, name, digest), ns, digest)
        guard link(layout.revision(ns, name, digest), ns, digest) else { return false }
        if let pushedBy { HostedStore.note(pushedBy, in: layout.revision(ns, name, digest)) }
        if let subject {
            _ = createEmptyFile(layout.referrer(ns, name, subject: subject, digest))
        }
        if let tag {
            guard writeFileAtomically(layout.tag(ns, name, tag), Array(digest.description.utf8)) else { return false }
        }
        return true
    }

    func resolve(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Digest? {
        guard let data = FileManager.default.contents(atPath: layout.tag(ns, name, tag)) else { return nil }
        return Digest(String(decoding: data, as: UTF8.self).trimmed(" \n"))
    }

    func tags(_ ns: String, _ name: RepositoryName) -> [Tag] {
        listDirectory(layout.tagsDir(ns, name)).compactMap { Tag($0) }
    }

    /// When the tag was last set (for retention's "newest").
    func tagTime(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Int64 {
        fileMillis(layout.tag(ns, name, tag)) ?? 0
    }

    func revisionTime(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Int64 {
        fileMillis(layout.revision(ns, name, d)) ?? 0
    }

    /// Who pushed a manifest (the signed-in user, or "sync"), if recorded.
    func revisionPusher(_ ns: String, _ name: RepositoryName, _ d: Digest) -> String? {
        guard let data = FileManager.default.contents(atPath: layout.revision(ns, name, d)), !data.isEmpty, data.count <= 256 else { return nil }
        return String(data: data, encoding: .utf8)
    }

    func revisions(_ ns: String, _ name: RepositoryName) -> [Digest] {
        HostedLayout.digests(under: layout.revisionsDir(ns, name))
    }

    func layers(_ ns: String, _ name: RepositoryName) -> [Digest] {
        HostedLayout.digests(under: "\(layout.repository(ns, name))/_layers")
    }

    func deleteTag(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> Bool {
        mutate { unlink(layout.tag(ns, name, tag)) == 0 }
    }

    /// Removes a manifest from a repository with every tag naming it and
    /// its referrer entry; the bytes stay until a collection finds them
    /// unreferenced. False when the repository did not hold it.
    func deleteManifest(_ ns: String, _ name: RepositoryName, _ d: Digest, subject: Digest?) -> Bool {
        mutate {
            guard unlinkFile(layout.revision(ns, name, d), ns, d) else { return false }
            for t in tags(ns, name) where resolve(ns, name, t) == d { unlink(layout.tag(ns, name, t)) }
            if let subject { unlink(layout.referrer(ns, name, subject: subject, d)) }
            return true
        }
    }

    /// Manifests in this repository whose subject is `subject`.
    func referrers(_ ns: String, _ name: RepositoryName, subject: Digest) -> [Digest] {
        listDirectory(layout.referrersDir(ns, name, subject: subject)).compactMap { f in
            f.firstIndex(of: "-").flatMap { Digest("\(f[..<$0]):\(f[f.index(after: $0)...])") }
        }
    }

    /// Every repository of a namespace (names without the namespace).
    func repositories(_ ns: String) -> [RepositoryName] {
        var out: [RepositoryName] = []
        func walk(_ dir: String, _ prefix: String) {
            let entries = listDirectory(dir)
            if entries.contains("_manifests") || entries.contains("_layers"), let n = RepositoryName(prefix) { out.append(n) }
            for e in entries where !e.hasPrefix("_") {
                walk("\(dir)/\(e)", prefix.isEmpty ? e : "\(prefix)/\(e)")
            }
        }
        walk(layout.namespace(ns), "")
        return out
    }

    // MARK: quota

    /// Bytes the namespace holds: each linked blob and manifest once.
    func usage(_ ns: String) -> Int64 {
        withUsage { u in u[ns]?.values.reduce(0) { $0 + $1.size } ?? 0 }
    }

    /// Counts usage afresh at the next use: another process (`anchorage gc
    /// --hosted`, `anchorage sync`) may have changed links.
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
        for ns in listDirectory(layout.repositoriesDir) {
            var u: [Digest: (size: Int64, links: Int)] = [:]
            for repo in repositories(ns) {
                for d in layers(ns, repo) + revisions(ns, repo) {
                    let size = content.stat(d) ?? 0
                    u[d] = (size, (u[d]?.links ?? 0) + 1)
                }
            }
            all[ns] = u
        }
        return all
    }

    // MARK: collection support

    func layerTime(_ ns: String, _ name: RepositoryName, _ d: Digest) -> Int64 {
        fileMillis(layout.layer(ns, name, d)) ?? 0
    }

    /// When the stored bytes were written.
    func contentTime(_ d: Digest) -> Int64? { fileMillis(layout.content.blob(d)) }

    /// Removes a blob no manifest references, with the links naming it.
    /// Only inside `mutate`.
    func removeUnreferenced(_ d: Digest, links: [(ns: String, name: RepositoryName)]) {
        for l in links { unlinkFile(layout.layer(l.ns, l.name, d), l.ns, d) }
        content.delete(d)
    }

    /// Every hosted namespace on disk.
    func namespaces() -> [String] { listDirectory(layout.repositoriesDir) }

    // MARK: files

    /// Writes a short note into a link file (its existence and time are
    /// what count; the note is for people).
    private static func note(_ text: String, in path: String) {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Array(text.utf8.prefix(256)).withUnsafeBytes { writeAll(fd, $0) }
        close(fd)
    }

    private func link(_ path: String, _ ns: String, _ d: Digest) -> Bool {
        let created = createEmptyFile(path)
        guard let created else { return false }
        // Linked again: its time says so, for the collector's grace period.
        if !created { utimensat(AT_FDCWD, path, nil, 0) }
        if created {
            let size = content.stat(d) ?? 0
            // Counted only if counted already: a count made later sees the file.
            state.withLock { s in
                guard s.usage != nil else { return }
                let e = s.usage?[ns]?[d]
                s.usage?[ns, default: [:]][d] = (size, (e?.links ?? 0) + 1)
            }
        }
        return true
    }

    @discardableResult
    private func unlinkFile(_ path: String, _ ns: String, _ d: Digest) -> Bool {
        guard unlink(path) == 0 else { return false }
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
