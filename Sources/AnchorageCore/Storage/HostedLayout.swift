import Foundation

/// Where hosted content lives, beside the cache and never evicted (as
/// distribution's `paths.go`, whose link files it follows):
///
///     <cache>/hosted/blobs/…, meta/…, tmp/…     content by digest (a `CacheLayout` of its own)
///     <cache>/hosted/repositories/<ns>/<name>/  the records (`HostedRecords`)
///         _layers/<alg>/<hex>                   a blob pushed to or mounted in this repository
///         _manifests/revisions/<alg>/<hex>      a manifest stored in this repository
///         _manifests/tags/<tag>                 the digest the tag names (text)
///         _referrers/<alg>/<subject hex>/<alg>-<hex>   a manifest whose subject is that digest
///     <cache>/hosted/charts/<repo>/<chart>/<version>/
///         entry.json, chart.tgz, chart.tgz.prov       an uploaded chart version
///
/// With an object store the bucket holds the same tree under `hosted/`
/// (`hosted/blobs/<alg>/<hex>`, `hosted/repositories/…`) and the local
/// content is a copy of what the bucket holds.
///
/// Repository name components start with [a-z0-9], so `_layers` and the
/// others never collide with a name.
struct HostedLayout: Sendable {
    let root: String
    /// The content store's own layout (blobs, media types, temp files).
    let content: CacheLayout

    init(cacheRoot: String) {
        root = "\(CacheLayout(root: cacheRoot).root)/hosted"
        content = CacheLayout(root: root)
    }

    /// Where `DirectoryRecords` keeps the repository records on one machine.
    var repositoriesDir: String { "\(root)/repositories" }

    // Record keys, relative to the records' root (`repositoriesDir`, or
    // `hosted/repositories/` in the bucket).

    func repository(_ ns: String, _ name: RepositoryName) -> String { "\(ns)/\(name.value)" }

    func layersDir(_ ns: String, _ name: RepositoryName) -> String { "\(repository(ns, name))/_layers" }

    func layer(_ ns: String, _ name: RepositoryName, _ d: Digest) -> String {
        "\(layersDir(ns, name))/\(d.algorithm.rawValue)/\(d.hex)"
    }

    func revisionsDir(_ ns: String, _ name: RepositoryName) -> String { "\(repository(ns, name))/_manifests/revisions" }

    func revision(_ ns: String, _ name: RepositoryName, _ d: Digest) -> String {
        "\(revisionsDir(ns, name))/\(d.algorithm.rawValue)/\(d.hex)"
    }

    func tagsDir(_ ns: String, _ name: RepositoryName) -> String { "\(repository(ns, name))/_manifests/tags" }

    func tag(_ ns: String, _ name: RepositoryName, _ tag: Tag) -> String { "\(tagsDir(ns, name))/\(tag.value)" }

    func referrersDir(_ ns: String, _ name: RepositoryName, subject: Digest) -> String {
        "\(repository(ns, name))/_referrers/\(subject.algorithm.rawValue)/\(subject.hex)"
    }

    func referrer(_ ns: String, _ name: RepositoryName, subject: Digest, _ d: Digest) -> String {
        "\(referrersDir(ns, name, subject: subject))/\(d.algorithm.rawValue)-\(d.hex)"
    }

    /// A hosted blob's key in the bucket (apart from cached blobs, so a
    /// hosted repository's content is reachable only through its links).
    static func bucketBlob(_ d: Digest) -> String { "hosted/blobs/\(d.algorithm.rawValue)/\(d.hex)" }
    static let bucketBlobs = "hosted/blobs/"
    static let bucketRecords = "hosted/repositories/"

    func chartRepository(_ repo: String) -> String { "\(root)/charts/\(repo)" }

    /// A chart version's directory; `chart` and `version` are safe components.
    func chartVersion(_ repo: String, _ chart: String, _ version: String) -> String {
        "\(chartRepository(repo))/\(chart)/\(version)"
    }

    /// The digests named by a `<alg>/<hex>` tree of records (`_layers`,
    /// `_manifests/revisions`).
    static func digests(under dir: String, in records: any HostedRecords) -> [Digest] {
        var out: [Digest] = []
        for alg in records.list(dir) {
            for hex in records.list("\(dir)/\(alg)") {
                if let d = Digest("\(alg):\(hex)") { out.append(d) }
            }
        }
        return out
    }
}

/// A directory's entry names, sorted; empty when it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var out: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { out.append(name) }
    }
    return out.sorted()
}
