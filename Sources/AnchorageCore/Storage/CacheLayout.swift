import Foundation
import Glibc
import Synchronization

/// The one source of truth for the on-disk layout (as distribution's
/// `registry/storage/paths.go`). Every path is built here from typed,
/// already-validated values; nothing else concatenates cache paths.
///
///     <root>/blobs/sha256/ab/abcdef…        blobs, manifests and chart archives, by digest
///     <root>/meta/sha256/ab/abcdef…         media type of a cached manifest
///     <root>/tags/<upstream>/<name>/_tags/<tag>   tag → digest record
///     <root>/charts/<repo>/index.upstream   last good upstream index.yaml
///     <root>/charts/<repo>/prov/<file>.prov provenance files
///     <root>/pins/<rule>                    digests a sync rule pins
///     <root>/sync.lock                      held while a sync runs
///     <root>/tmp/<pid>-<n>                  blobs being written (same filesystem: rename commits)
///
/// `_tags` cannot collide with a repository name component, which must start
/// with [a-z0-9].
public struct CacheLayout: Sendable {
    public let root: String
    private static let counter = Atomic<Int>(0)

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public var blobsDir: String { "\(root)/blobs" }
    public var tmpDir: String { "\(root)/tmp" }
    /// Tag records, one directory per upstream (`tag(upstream:name:tag:)`).
    var tagsDir: String { "\(root)/tags" }
    /// One file per sync rule: the digests it pins (`PinSet`).
    var pinsDir: String { "\(root)/pins" }
    /// Held (flock) while a sync runs on this cache.
    var syncLock: String { "\(root)/sync.lock" }
    /// Written and removed by the readiness check.
    var readinessProbe: String { "\(tmpDir)/.ready-\(getpid())" }

    public func blob(_ d: Digest) -> String {
        "\(root)/blobs/\(d.algorithm.rawValue)/\(d.hex.prefix(2))/\(d.hex)"
    }

    public func mediaType(_ d: Digest) -> String {
        "\(root)/meta/\(d.algorithm.rawValue)/\(d.hex.prefix(2))/\(d.hex)"
    }

    /// `upstream` is a validated registry name (host characters only).
    func tag(upstream: String, name: RepositoryName, tag: Tag) -> String {
        "\(tagsDir(upstream: upstream, name: name))/\(tag.value)"
    }

    func tagsDir(upstream: String, name: RepositoryName) -> String { "\(tagsDir)/\(upstream)/\(name.value)/_tags" }

    /// The last good upstream index of a chart repository (kept across restarts).
    func chartIndex(repository: String) -> String { "\(root)/charts/\(repository)/index.upstream" }

    /// A cached provenance file; `file` is a validated `NAME-VERSION.tgz`.
    func chartProvenance(repository: String, file: String) -> String { "\(root)/charts/\(repository)/prov/\(file).prov" }

    /// A fresh temp path, unique across processes sharing the cache
    /// (the pid lets start-up tell its own leftovers from a live peer's).
    func newTempPath() -> String {
        let n = CacheLayout.counter.add(1, ordering: .relaxed).newValue
        return "\(tmpDir)/\(getpid())-\(n)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Creates the root directory (and its parents); nil on success, else
    /// why not in words that name the cause (a loop of symbolic links says
    /// so, not "File exists").
    func createRoot() -> String? {
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            return nil
        } catch {
            var st = stat()
            if stat(root, &st) != 0, errno == ELOOP {
                return "the path goes through a loop of symbolic links"
            }
            if stat(root, &st) == 0, st.st_mode & S_IFMT != S_IFDIR {
                return "the path exists and is not a directory"
            }
            return "\(error)"
        }
    }

    /// The digest a blob path names, if it is one (for scans).
    static func digest(algorithmDir: String, file: String) -> Digest? {
        Digest("\(algorithmDir):\(file)")
    }
}

/// Creates the parent directory of a path (mkdir -p).
func makeParentDirectory(_ path: String) {
    let parent = (path as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
}

/// Writes a small file atomically: temp file in the same directory, fsync, rename.
/// `durable: false` skips the fsync, for hints that are cheap to lose
/// (a crash then leaves the old file or, at worst, one that fails to parse).
func writeFileAtomically(_ path: String, _ bytes: [UInt8], durable: Bool = true) -> Bool {
    makeParentDirectory(path)
    let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    let ok = bytes.withUnsafeBytes { writeAll(fd, $0) } && (!durable || fsync(fd) == 0)
    close(fd)
    guard ok, rename(tmp, path) == 0 else {
        unlink(tmp)
        return false
    }
    return true
}

extension CacheLayout {
    /// Every file under `blobs/`: its digest when the name is a valid digest
    /// in the right prefix directory (nil otherwise), and its path. The one
    /// walk of the store shared by the index scan, `verify` and the scrubber.
    func forEachBlob(_ body: (Digest?, String) -> Void) {
        let fm = FileManager.default
        for alg in ((try? fm.contentsOfDirectory(atPath: blobsDir)) ?? []).sorted() {
            for prefix in ((try? fm.contentsOfDirectory(atPath: "\(blobsDir)/\(alg)")) ?? []).sorted() {
                let dir = "\(blobsDir)/\(alg)/\(prefix)"
                for name in ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                    let d = CacheLayout.digest(algorithmDir: alg, file: name).flatMap { name.hasPrefix(prefix) ? $0 : nil }
                    body(d, "\(dir)/\(name)")
                }
            }
        }
    }
}

/// Hashes a file in 1 MiB reads; `afterRead` sees each read's size (for
/// pacing). Nil when the file cannot be opened (evicted meanwhile).
func hashFile(_ path: String, _ algorithm: Digest.Algorithm, afterRead: (Int) -> Void = { _ in }) -> Digest? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    let h = Hasher(algorithm)
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        afterRead(n)
    }
    return h.finish()
}
