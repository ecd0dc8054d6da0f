/// `[charts "NAME"]`: one classic Helm chart repository, served at `/charts/NAME/`.
public struct ChartsConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    public var indexTTL: ConfigDuration
    public var username: String?
    public var password: String?
    public var keepVersions: Int?

    static let schema = SectionSchema(kind: "charts", named: true, keys: [
        ConfigKey("url", .url, help: "the upstream repository URL (what you would give to helm repo add); or hosted = true"),
        ConfigKey("hosted", .bool, default: "false", help: "a repository teams upload charts to (ChartMuseum's API) instead of a mirror of url"),
        ConfigKey("writers", .string, repeatable: true, help: "with hosted = true: htpasswd users who may upload and delete charts, comma-separated; * for every user"),
        ConfigKey("index_ttl", .duration, default: "5m", help: "index.yaml is served from cache this long, then refreshed in the background"),
        ConfigKey("username", .string, help: "upstream user (sent to the repository's own host only); needs password or password_file"),
        ConfigKey("password", .string, help: "upstream password (prefer password_file)"),
        ConfigKey("password_file", .path, help: "file whose first line is the upstream password"),
        ConfigKey("keep_versions", .integer(1...100_000), help: "serve only the newest N versions of each chart (default: all)"),
    ])

    init(_ r: SectionReader, name: String) throws(ConfigError) {
        self.name = name
        try ChartsConfig.checkName(r, name)
        guard r.isSet("url") else { throw ConfigError(file: r.file, line: r.section.line, "missing required key 'url' in [charts \"\(name)\"] (or hosted = true)") }
        if r.isSet("writers") { throw r.error("writers", "writers applies to a hosted repository (hosted = true)") }
        var u = r.string("url") ?? ""
        while u.hasSuffix("/") { u.removeLast() }
        url = u
        indexTTL = r.duration("index_ttl")
        keepVersions = r.isSet("keep_versions") ? r.int("keep_versions") : nil
        let credentials = try UpstreamCredentials(r)
        username = credentials.username
        password = credentials.password
    }

    static func checkName(_ r: SectionReader, _ name: String) throws(ConfigError) {
        guard ChartIndex.isSafeComponent(name), !name.contains("+") else {
            throw ConfigError(file: r.file, line: r.section.line, "invalid chart repository name '\(name)': use letters, digits, '.', '-', '_'")
        }
    }

    func render() -> [(String, String)] {
        var out: [(String, String)] = [("url", url), ("index_ttl", indexTTL.description)]
        if let username { out.append(("username", username)) }
        if password != nil { out.append(("password", "<redacted>")) }
        if let keepVersions { out.append(("keep_versions", "\(keepVersions)")) }
        return out
    }
}

/// `[charts "NAME"]` with `hosted = true`: a chart repository teams upload
/// to through ChartMuseum's API, served at `/charts/NAME/` like a mirrored one.
public struct HostedChartsConfig: Sendable, Equatable {
    public var name: String
    public var writers: [String]

    init(_ r: SectionReader, name: String, htpasswd: Htpasswd?) throws(ConfigError) {
        self.name = name
        try ChartsConfig.checkName(r, name)
        for key in ["url", "index_ttl", "username", "password", "password_file", "keep_versions"] where r.isSet(key) {
            throw r.error(key, "'\(key)' is for a mirrored repository, not one with hosted = true")
        }
        writers = r.isSet("writers") ? HostedConfig.list(r.all("writers")) : []
        try HostedConfig.checkWriters(writers, r, htpasswd: htpasswd)
    }

    func mayWrite(_ user: String?) -> Bool { HostedConfig.mayWrite(user, writers) }

    func render() -> [(String, String)] {
        [("hosted", "true")] + (writers.isEmpty ? [] : [("writers", writers.joined(separator: ", "))])
    }
}
