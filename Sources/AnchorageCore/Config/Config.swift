import Foundation

/// The whole effective configuration: what `mirror.conf` says, with every
/// default filled in. Built only through `parse`, so a `Config` value is
/// always valid.
public struct Config: Sendable {
    public var server: ServerConfig
    public var cache: CacheConfig
    public var log: LogConfig
    public var upstream: UpstreamConfig
    public var auth: AuthConfig
    public var registries: [RegistryConfig]
    public var charts: [ChartsConfig]
    public var hosted: [HostedConfig]
    public var hostedCharts: [HostedChartsConfig]
    public var sync: SyncConfig
    public var storage: StorageConfig = .local
    public var cluster: ClusterConfig = .none
    /// Where it came from, for messages.
    public var source: String
    /// No `[registry]` section: `registries` is the built-in Docker Hub.
    public var registriesAreBuiltIn = false
    /// Accepted lines that should change (retired keys), for start-up and `check-config`.
    public var warnings: [ConfigWarning] = []

    /// Every section the parser knows, in the order they are printed.
    public static let schemas: [SectionSchema] = [
        ServerConfig.schema, CacheConfig.schema, UpstreamConfig.schema, AuthConfig.schema, LogConfig.schema, RegistryConfig.schema, HostedConfig.schema, ChartsConfig.schema, SyncConfig.schema, StorageConfig.schema, ClusterConfig.schema,
    ]

    /// The upstream used when a config names none: Docker Hub.
    static let dockerHub = RegistryConfig(name: "docker.io", url: "https://registry-1.docker.io", isDefault: true)

    public static func load(path: String) throws(ConfigError) -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, "cannot read configuration file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, "configuration file is not UTF-8")
        }
        return try parse(text, file: path)
    }

    /// `--config PATH`, else `./mirror.conf` if present, else the defaults.
    public static func loadDefault(explicitPath: String?) throws(ConfigError) -> Config {
        if let explicitPath { return try load(path: explicitPath) }
        if FileManager.default.fileExists(atPath: "mirror.conf") { return try load(path: "mirror.conf") }
        return try parse("", file: "<built-in defaults>")
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Config {
        let sections = try ConfigFileParser.parse(text, file: file)
        var singletons: [String: SectionReader] = [:]
        var registries: [RegistryConfig] = []
        var charts: [ChartsConfig] = []
        var hostedReaders: [SectionReader] = []
        var chartReaders: [SectionReader] = []
        var warnings: [ConfigWarning] = []
        for s in sections {
            guard let schema = schemas.first(where: { $0.kind == s.kind }) else {
                let known = schemas.map(\.kind).joined(separator: ", ")
                throw ConfigError(file: file, line: s.line, "unknown section [\(s.kind)] (known: \(known))")
            }
            if schema.named != (s.name != nil) {
                throw ConfigError(file: file, line: s.line, schema.named ? "section [\(s.kind)] needs a name: [\(s.kind) \"NAME\"]" : "section [\(s.kind)] takes no name")
            }
            let reader = try SectionReader(schema: schema, section: s, file: file)
            warnings += reader.warnings
            switch s.kind {
            case "registry":
                let name = s.name ?? ""
                if registries.contains(where: { $0.name == name }) {
                    throw ConfigError(file: file, line: s.line, "duplicate section [registry \"\(name)\"]")
                }
                registries.append(try RegistryConfig(reader, name: name))
            case "charts":
                let name = s.name ?? ""
                if chartReaders.contains(where: { $0.section.name == name }) {
                    throw ConfigError(file: file, line: s.line, "duplicate section [charts \"\(name)\"]")
                }
                chartReaders.append(reader)
            case "hosted":
                if let prev = hostedReaders.first(where: { $0.section.name == s.name }) {
                    throw ConfigError(file: file, line: s.line, "duplicate section [hosted \"\(s.name ?? "")\"] (first on line \(prev.section.line))")
                }
                hostedReaders.append(reader)
            default:
                if let prev = singletons[s.kind] {
                    throw ConfigError(file: file, line: s.line, "duplicate section [\(s.kind)] (first on line \(prev.section.line))")
                }
                singletons[s.kind] = reader
            }
        }
        func reader(_ schema: SectionSchema) throws(ConfigError) -> SectionReader {
            if let r = singletons[schema.kind] { return r }
            return try SectionReader(schema: schema, section: ConfigSection(kind: schema.kind, name: nil, line: 0, entries: []), file: file)
        }
        let server = try ServerConfig(try reader(ServerConfig.schema))
        let cache = CacheConfig(try reader(CacheConfig.schema))
        let log = LogConfig(try reader(LogConfig.schema))
        let upstream = UpstreamConfig(try reader(UpstreamConfig.schema))
        let auth = try AuthConfig(try reader(AuthConfig.schema))
        // [hosted] sections (and hosted chart repositories) name htpasswd
        // users: read after [auth].
        var hostedCharts: [HostedChartsConfig] = []
        for r in chartReaders {
            if r.bool("hosted") {
                hostedCharts.append(try HostedChartsConfig(r, name: r.section.name ?? "", htpasswd: auth.htpasswd))
            } else {
                charts.append(try ChartsConfig(r, name: r.section.name ?? ""))
            }
        }
        var hosted: [HostedConfig] = []
        for r in hostedReaders {
            let name = r.section.name ?? ""
            if registries.contains(where: { $0.name == name }) {
                throw ConfigError(file: file, line: r.section.line, "'\(name)' is both a hosted namespace and a [registry] name: a path /v2/\(name)/… must mean one of them")
            }
            hosted.append(try HostedConfig(r, name: name, htpasswd: auth.htpasswd))
        }
        let builtIn = registries.isEmpty
        if builtIn {
            registries = [dockerHub]
        } else if registries.count == 1 {
            registries[0].isDefault = true
        }
        let defaults = registries.filter(\.isDefault)
        if defaults.count != 1 {
            let line = sections.first { $0.kind == "registry" }?.line ?? 0
            throw ConfigError(file: file, line: line, defaults.isEmpty
                ? "several [registry] sections and none has 'default = true'"
                : "more than one [registry] section has 'default = true': \(defaults.map(\.name).joined(separator: ", "))")
        }
        // [sync] rules name registries and chart repositories: read it last.
        var sync = SyncConfig.empty
        if let r = singletons["sync"] {
            sync = try SyncConfig(r, registries: registries, charts: charts, hosted: hosted.map(\.name), defaultRegistry: registries.first(where: \.isDefault)?.name ?? registries[0].name)
        }
        var config = Config(server: server, cache: cache, log: log, upstream: upstream, auth: auth, registries: registries, charts: charts,
                            hosted: hosted, hostedCharts: hostedCharts, sync: sync, source: file, registriesAreBuiltIn: builtIn, warnings: warnings)
        config.storage = try StorageConfig(try reader(StorageConfig.schema))
        config.cluster = try ClusterConfig(try reader(ClusterConfig.schema))
        return config
    }

    /// Upstream credentials served to anyone who can reach the mirror: the
    /// combination `check-config` and start-up warn about.
    public var exposedCredentials: [String] {
        guard auth.htpasswd == nil else { return [] }
        return registries.filter { $0.username != nil }.map { "registry \($0.name)" } + charts.filter { $0.username != nil }.map { "charts \($0.name)" }
    }

    public var defaultRegistry: RegistryConfig {
        registries.first(where: \.isDefault) ?? registries[0]
    }

    /// The effective configuration in the file's own syntax, defaults included.
    public func render() -> String {
        var out = "# effective configuration (source: \(source))\n"
        func section(_ header: String, _ pairs: [(String, String)]) {
            out += "\n\(header)\n"
            for (k, v) in pairs { out += "\(k) = \(v)\n" }
        }
        section("[server]", server.render())
        section("[cache]", cache.render())
        section("[upstream]", upstream.render())
        section("[auth]", auth.render())
        section("[log]", log.render())
        for r in registries { section("[registry \"\(r.name)\"]", r.render()) }
        for h in hosted { section("[hosted \"\(h.name)\"]", h.render()) }
        for c in charts { section("[charts \"\(c.name)\"]", c.render()) }
        if storage.backend != .local { section("[storage]", storage.render()) }
        if !cluster.peers.isEmpty { section("[cluster]", cluster.render()) }
        for c in hostedCharts { section("[charts \"\(c.name)\"]", c.render()) }
        let syncLines = sync.render()
        if !sync.rules.isEmpty || sync.schedule != nil { section("[sync]", syncLines) }
        return out
    }
}
