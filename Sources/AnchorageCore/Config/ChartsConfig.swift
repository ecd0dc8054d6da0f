/// `[charts "NAME"]`: one classic Helm chart repository, served at `/charts/NAME/`.
public struct ChartsConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    public var indexTTL: ConfigDuration
    public var username: String?
    public var password: String?
    public var keepVersions: Int?

    static let schema = SectionSchema(kind: "charts", named: true, keys: [
        ConfigKey("url", .url, required: true, help: "the upstream repository URL (what you would give to helm repo add)"),
        ConfigKey("index_ttl", .duration, default: "5m", help: "index.yaml is served from cache this long, then refreshed in the background"),
        ConfigKey("username", .string, help: "upstream user (sent to the repository's own host only); needs password or password_file"),
        ConfigKey("password", .string, help: "upstream password (prefer password_file)"),
        ConfigKey("password_file", .path, help: "file whose first line is the upstream password"),
        ConfigKey("keep_versions", .integer(1...100_000), help: "serve only the newest N versions of each chart (default: all)"),
    ])

    init(_ r: SectionReader, name: String) throws(ConfigError) {
        self.name = name
        guard ChartIndex.isSafeComponent(name), !name.contains("+") else {
            throw ConfigError(file: r.file, line: r.section.line, "invalid chart repository name '\(name)': use letters, digits, '.', '-', '_'")
        }
        var u = r.string("url") ?? ""
        while u.hasSuffix("/") { u.removeLast() }
        url = u
        indexTTL = r.duration("index_ttl")
        keepVersions = r.isSet("keep_versions") ? r.int("keep_versions") : nil
        let credentials = try UpstreamCredentials(r)
        username = credentials.username
        password = credentials.password
    }

    func render() -> [(String, String)] {
        var out: [(String, String)] = [("url", url), ("index_ttl", indexTTL.description)]
        if let username { out.append(("username", username)) }
        if password != nil { out.append(("password", "<redacted>")) }
        if let keepVersions { out.append(("keep_versions", "\(keepVersions)")) }
        return out
    }
}
