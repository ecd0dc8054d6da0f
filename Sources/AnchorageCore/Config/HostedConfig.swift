/// `[hosted "NAME"]`: a namespace teams push to. `docker push
/// MIRROR/NAME/team/app:1.4` stores the image here; pulls of `NAME/…` never
/// go upstream, and nothing in it is ever evicted.
public struct HostedConfig: Sendable, Equatable {
    public var name: String
    /// htpasswd users who may push and delete here; `*` is every user.
    public var writers: [String]
    /// The namespace's quota: pushes that would pass it are refused.
    public var maxSize: ByteSize?
    /// Tags matching one of these may not be moved to another manifest.
    public var immutableTags: [TagPattern]
    /// Retention: keep only the newest N tags of each repository (among
    /// those matching `retainMatching`); older ones are deleted by `gc`.
    public var keepTags: Int?
    public var retainMatching: [TagPattern]
    /// Retention: manifests without a tag are deleted by `gc` after this age.
    public var untaggedAfter: ConfigDuration?
    /// An upload idle this long is abandoned and purged; a blob younger than
    /// this survives garbage collection though nothing references it yet.
    public var grace: ConfigDuration

    static let schema = SectionSchema(kind: "hosted", named: true, keys: [
        ConfigKey("writers", .string, repeatable: true, help: "htpasswd users who may push and delete here, comma-separated; * for every user (pulls follow [auth])"),
        ConfigKey("max_size", .size, help: "quota for everything stored in this namespace; a push past it is refused (default: no quota)"),
        ConfigKey("immutable_tags", .string, repeatable: true, help: "tags matching this pattern (* and ? wildcards) may not be overwritten, e.g. v*"),
        ConfigKey("keep_tags", .integer(1...1_000_000), help: "gc keeps only the newest N tags of each repository (those matching keep_tags_matching)"),
        ConfigKey("keep_tags_matching", .string, default: "*", repeatable: true, help: "which tags keep_tags counts and may delete (* and ? wildcards)"),
        ConfigKey("delete_untagged_after", .duration, help: "gc deletes manifests that no tag names once they are this old (default: keep them)"),
        ConfigKey("grace_period", .duration, default: "1h", help: "an upload idle this long is purged; unreferenced blobs younger than this survive gc"),
    ])

    init(_ r: SectionReader, name: String, htpasswd: Htpasswd?) throws(ConfigError) {
        self.name = name
        guard RepositoryName.isValidComponent(Array(name.utf8)) else {
            throw ConfigError(file: r.file, line: r.section.line, "invalid hosted namespace '\(name)': one repository name component, such as local or team-images")
        }
        writers = r.isSet("writers") ? HostedConfig.list(r.all("writers")) : []
        try HostedConfig.checkWriters(writers, r, htpasswd: htpasswd)
        maxSize = r.isSet("max_size") ? r.size("max_size") : nil
        immutableTags = r.isSet("immutable_tags") ? HostedConfig.list(r.all("immutable_tags")).map(TagPattern.init) : []
        keepTags = r.isSet("keep_tags") ? r.int("keep_tags") : nil
        retainMatching = HostedConfig.list(r.all("keep_tags_matching")).map(TagPattern.init)
        untaggedAfter = r.isSet("delete_untagged_after") ? r.duration("delete_untagged_after") : nil
        grace = r.duration("grace_period")
    }

    public init(name: String, writers: [String] = []) {
        self.name = name
        self.writers = writers
        immutableTags = []
        retainMatching = [TagPattern("*")]
        grace = ConfigDuration(milliseconds: 3_600_000)
    }

    static func list(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { $0.trimmed(" \t") }.filter { !$0.isEmpty }
    }

    /// Writers are signed-in users the htpasswd file knows.
    static func checkWriters(_ writers: [String], _ r: SectionReader, htpasswd: Htpasswd?) throws(ConfigError) {
        guard !writers.isEmpty else { return }
        guard let htpasswd else {
            throw r.error("writers", "writers needs [auth] htpasswd: pushes are made by signed-in users")
        }
        if let unknown = writers.first(where: { $0 != "*" && htpasswd.users[$0] == nil }) {
            throw r.error("writers", "writers names '\(unknown)', who is not in the htpasswd file")
        }
    }

    static func mayWrite(_ user: String?, _ writers: [String]) -> Bool {
        guard let user else { return false }
        return writers.contains("*") || writers.contains(user)
    }

    func mayWrite(_ user: String?) -> Bool { HostedConfig.mayWrite(user, writers) }

    func isImmutable(_ tag: Tag) -> Bool { immutableTags.contains { $0.matches(tag.value) } }

    func render() -> [(String, String)] {
        var out: [(String, String)] = []
        if !writers.isEmpty { out.append(("writers", writers.joined(separator: ", "))) }
        if let maxSize { out.append(("max_size", maxSize.description)) }
        if !immutableTags.isEmpty { out.append(("immutable_tags", immutableTags.map(\.text).joined(separator: ", "))) }
        if let keepTags { out.append(("keep_tags", "\(keepTags)")) }
        out.append(("keep_tags_matching", retainMatching.map(\.text).joined(separator: ", ")))
        if let untaggedAfter { out.append(("delete_untagged_after", untaggedAfter.description)) }
        out.append(("grace_period", grace.description))
        return out
    }
}

/// A tag pattern with `*` (any run) and `?` (any one character).
public struct TagPattern: Sendable, Equatable {
    public let text: String
    public init(_ text: String) { self.text = text }

    public func matches(_ s: String) -> Bool {
        let p = Array(text.utf8), t = Array(s.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
