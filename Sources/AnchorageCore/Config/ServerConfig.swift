/// `[server]`: where and how the HTTP server listens.
public struct ServerConfig: Sendable, Equatable {
    public var listen: [ListenAddress]
    public var workers: Int
    public var headerTimeout: ConfigDuration
    public var idleTimeout: ConfigDuration
    public var sendTimeout: ConfigDuration
    public var shutdownGrace: ConfigDuration
    public var accessLog: Bool
    public var sendfile: Bool
    public var allow: [AddressRange]
    public var tlsListen: [ListenAddress]
    public var tlsCert: String?
    public var tlsKey: String?

    static let schema = SectionSchema(kind: "server", named: false, keys: [
        ConfigKey("listen", .listen, default: "0.0.0.0:5000", repeatable: true, help: "address to listen on; repeat for several; [::]:5000 is IPv6 only, so list 0.0.0.0:5000 beside it for IPv4 clients"),
        ConfigKey("workers", .integer(0...256), default: "0", help: "event-loop threads; 0 = one per CPU core"),
        ConfigKey("header_timeout", .duration, default: "10s", help: "a request head must arrive within this (slowloris guard)"),
        ConfigKey("idle_timeout", .duration, default: "60s", help: "idle keep-alive connections are closed after this"),
        ConfigKey("send_timeout", .duration, default: "60s", help: "a client that reads nothing for this long is dropped"),
        ConfigKey("shutdown_grace", .duration, default: "10s", help: "on SIGTERM/SIGINT, in-flight responses get this long to finish"),
        ConfigKey("access_log", .bool, default: "true", help: "one logfmt line per request on stderr"),
        ConfigKey("sendfile", .oneOf(["on", "off"]), default: "on",
                  help: "cached bodies go from the page cache to the socket with sendfile(2) (on), or are read and sent (off); TLS connections always read and encrypt"),
        ConfigKey("allow", .cidr, repeatable: true, help: "client addresses served (CIDR, repeatable); others get 403; default: everyone"),
        ConfigKey("tls_listen", .listen, repeatable: true, help: "address to serve HTTPS on (repeatable; needs tls_cert and tls_key)"),
        ConfigKey("tls_cert", .path, help: "PEM certificate chain for tls_listen; reloaded on SIGHUP"),
        ConfigKey("tls_key", .path, help: "PEM private key for tls_cert; reloaded on SIGHUP"),
    ], retired: ["cpu_affinity": "event loops are placed by the kernel and connections go to the least busy loop"],
       retiredValues: ["sendfile": ["auto": "on"]])

    init(_ r: SectionReader) throws(ConfigError) {
        listen = r.all("listen").compactMap(ListenAddress.init(parsing:))
        tlsListen = r.section.entries.filter { $0.key == "tls_listen" }.compactMap { ListenAddress(parsing: $0.value) }
        tlsCert = r.string("tls_cert")
        tlsKey = r.string("tls_key")
        if !tlsListen.isEmpty && (tlsCert == nil || tlsKey == nil) {
            throw r.error("tls_listen", "tls_listen needs tls_cert and tls_key")
        }
        if let cert = tlsCert, let key = tlsKey {
            do {
                _ = try TLSContext(certPath: cert, keyPath: key)
            } catch {
                throw r.error("tls_cert", "\(error)")
            }
        }
        workers = r.int("workers")
        headerTimeout = r.duration("header_timeout")
        idleTimeout = r.duration("idle_timeout")
        sendTimeout = r.duration("send_timeout")
        shutdownGrace = r.duration("shutdown_grace")
        accessLog = r.bool("access_log")
        sendfile = r.string("sendfile") != "off"
        allow = r.section.entries.filter { $0.key == "allow" }.compactMap { AddressRange($0.value) }
    }

    func render() -> [(String, String)] {
        listen.map { ("listen", $0.description) } + [
            ("workers", "\(workers)"),
            ("header_timeout", headerTimeout.description),
            ("idle_timeout", idleTimeout.description),
            ("send_timeout", sendTimeout.description),
            ("shutdown_grace", shutdownGrace.description),
            ("access_log", "\(accessLog)"),
            ("sendfile", sendfile ? "on" : "off"),
        ] + allow.map { ("allow", $0.description) } + tlsListen.map { ("tls_listen", $0.description) }
            + (tlsCert.map { [("tls_cert", $0)] } ?? []) + (tlsKey.map { [("tls_key", $0)] } ?? [])
    }
}

/// `[cache]`: where blobs live and how much room they get.
public struct CacheConfig: Sendable, Equatable {
    public var path: String
    public var maxSize: ByteSize
    public var manifestTTL: ConfigDuration
    public var negativeTTL: ConfigDuration
    public var scrubRate: ByteSize
    public var scrubInterval: ConfigDuration

    static let schema = SectionSchema(kind: "cache", named: false, keys: [
        ConfigKey("path", .path, default: "./anchorage-cache", help: "cache directory (relative paths are relative to the working directory)"),
        ConfigKey("max_size", .size, default: "20GiB", help: "hard budget for cached bytes; least recently used entries are evicted beyond it"),
        ConfigKey("manifest_ttl", .duration, default: "5m", help: "a tag is served from cache this long before it is revalidated upstream"),
        ConfigKey("negative_ttl", .duration, default: "30s", help: "an upstream 404 for a tag is remembered this long"),
        ConfigKey("scrub_rate", .size, default: "32MiB", help: "background re-hashing of cached blobs, bytes per second (0 disables); corrupt ones are dropped and re-fetched"),
        ConfigKey("scrub_interval", .duration, default: "6h", help: "pause between two scrub passes over the whole cache"),
    ], retired: ["large_folios": "fetched blobs are written in plain steps everywhere"])

    init(_ r: SectionReader) {
        path = r.string("path") ?? "./anchorage-cache"
        maxSize = r.size("max_size")
        manifestTTL = r.duration("manifest_ttl")
        negativeTTL = r.duration("negative_ttl")
        scrubRate = r.size("scrub_rate")
        scrubInterval = r.duration("scrub_interval")
    }

    func render() -> [(String, String)] {
        [("path", path), ("max_size", maxSize.description), ("manifest_ttl", manifestTTL.description), ("negative_ttl", negativeTTL.description),
         ("scrub_rate", scrubRate.description), ("scrub_interval", scrubInterval.description)]
    }
}

/// `[auth]`: client authentication.
public struct AuthConfig: Sendable {
    public var htpasswd: Htpasswd?
    public var htpasswdPath: String?
    public var failureLimit: Int
    /// Users who may manage the whole mirror from the console and its API.
    public var admins: [String]

    static let schema = SectionSchema(kind: "auth", named: false, keys: [
        ConfigKey("htpasswd", .path, help: "bcrypt htpasswd file (htpasswd -B); clients then need Basic credentials"),
        ConfigKey("admins", .string, repeatable: true, help: "users (comma-separated) who may evict, pin, sync, collect garbage and delete in any hosted repository from the console or /api/"),
        ConfigKey("failure_limit", .integer(1...10_000), default: "10", help: "failed logins per client address per minute before it gets 429"),
    ])

    init(_ r: SectionReader) throws(ConfigError) {
        htpasswdPath = r.string("htpasswd")
        failureLimit = r.int("failure_limit")
        if let path = htpasswdPath {
            do {
                htpasswd = try Htpasswd.load(path)
            } catch {
                throw ConfigError(file: r.file, line: r.line("htpasswd"), "htpasswd: \(error)")
            }
        }
        admins = HostedConfig.list(r.all("admins"))
        if !admins.isEmpty {
            guard let htpasswd else { throw r.error("admins", "admins needs htpasswd: admins are signed-in users") }
            if let unknown = admins.first(where: { htpasswd.users[$0] == nil }) {
                throw r.error("admins", "admins names '\(unknown)', who is not in the htpasswd file")
            }
        }
    }

    func isAdmin(_ user: String?) -> Bool { user.map(admins.contains) ?? false }

    func render() -> [(String, String)] {
        (htpasswdPath.map { [("htpasswd", $0)] } ?? []) + [("failure_limit", "\(failureLimit)")]
            + (admins.isEmpty ? [] : [("admins", admins.joined(separator: ", "))])
    }
}

/// `[log]`: diagnostics.
public struct LogConfig: Sendable, Equatable {
    public var level: Log.Level

    static let schema = SectionSchema(kind: "log", named: false, keys: [
        ConfigKey("level", .oneOf(Log.Level.allCases.map(\.name)), default: "info", help: "least severe level written to stderr: debug, info, warn, error"),
    ])

    init(_ r: SectionReader) {
        level = Log.Level.allCases.first { $0.name == r.string("level") } ?? .info
    }

    func render() -> [(String, String)] { [("level", level.name)] }
}
