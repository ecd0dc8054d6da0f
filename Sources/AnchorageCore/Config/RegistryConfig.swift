import Foundation

/// `[registry "NAME"]`: one upstream registry. NAME is what clients use to
/// pick it (`?ns=NAME`, or a first path component `/v2/NAME/...`).
public struct RegistryConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    public var isDefault: Bool
    public var username: String?
    public var password: String?
    public var caFile: String?
    public var tlsVerify: Bool
    public var manifestTTL: ConfigDuration?

    static let schema = SectionSchema(kind: "registry", named: true, keys: [
        ConfigKey("url", .url, required: true, help: "base URL of the upstream registry (any v2 registry, or another Anchorage)"),
        ConfigKey("default", .bool, default: "false", help: "serve requests that name no upstream (Docker's registry-mirrors); exactly one default"),
        ConfigKey("username", .string, help: "upstream user; needs password or password_file"),
        ConfigKey("password", .string, help: "upstream password (prefer password_file)"),
        ConfigKey("password_file", .path, help: "file whose first line is the upstream password"),
        ConfigKey("ca_file", .path, help: "PEM bundle of CAs trusted for this upstream (private registries)"),
        ConfigKey("tls_verify", .bool, default: "true", help: "verify the upstream's certificate; false must be set explicitly"),
        ConfigKey("manifest_ttl", .duration, help: "tag freshness for this upstream (default: [cache] manifest_ttl)"),
    ])

    init(_ r: SectionReader, name: String) throws(ConfigError) {
        self.name = name
        guard RegistryConfig.isValidName(name) else {
            throw ConfigError(file: r.file, line: r.section.line, "invalid registry name '\(name)': expected a host name such as docker.io or registry.example.com:5000")
        }
        var u = r.string("url") ?? ""
        while u.hasSuffix("/") { u.removeLast() }
        url = u
        isDefault = r.bool("default")
        tlsVerify = r.bool("tls_verify")
        caFile = r.string("ca_file")
        manifestTTL = r.isSet("manifest_ttl") ? r.duration("manifest_ttl") : nil
        let credentials = try UpstreamCredentials(r)
        username = credentials.username
        password = credentials.password
        if let ca = caFile, !FileManager.default.isReadableFile(atPath: ca) {
            throw r.error("ca_file", "cannot read ca_file '\(ca)'")
        }
    }

    public init(name: String, url: String, isDefault: Bool) {
        self.name = name
        self.url = url
        self.isDefault = isDefault
        self.tlsVerify = true
    }

    /// Host names with an optional port: what a client can put in `?ns=`.
    static func isValidName(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        return s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 58 || $0 == 95 }
            && !s.hasPrefix(".") && !s.contains("..")
    }

    func render() -> [(String, String)] {
        var out: [(String, String)] = [("url", url), ("default", "\(isDefault)")]
        if let username { out.append(("username", username)) }
        if password != nil { out.append(("password", "<redacted>")) }
        if let caFile { out.append(("ca_file", caFile)) }
        out.append(("tls_verify", "\(tlsVerify)"))
        if let manifestTTL { out.append(("manifest_ttl", manifestTTL.description)) }
        return out
    }
}
