import Foundation

/// `[storage]`: where content lives besides the local cache. `local` (the
/// default) keeps everything on this machine's disk; `s3` adds an
/// S3-compatible bucket as a second tier that several nodes share.
public struct StorageConfig: Sendable {
    public enum Backend: String, Sendable { case local, s3 }
    public enum Addressing: String, Sendable { case path, virtual }

    /// The bucket's settings (`backend = s3`).
    public struct S3: Sendable {
        public var endpoint: String
        public var bucket: String
        public var region: String
        /// Prepended to every object key, ending in "/" unless empty.
        public var prefix: String
        public var addressing: Addressing
        public var accessKey: String
        public var secretKey: String
        public var caFile: String?
        public var tlsVerify: Bool
        /// Blob GETs the bucket can answer are redirected to it (307 to a
        /// presigned URL) instead of passing through this node.
        public var redirect = false
    }

    public var backend: Backend
    public var s3: S3?

    static let schema = SectionSchema(kind: "storage", named: false, keys: [
        ConfigKey("backend", .oneOf(["local", "s3"]), default: "local", help: "local: this machine's disk only; s3: an S3-compatible bucket as a shared second tier"),
        ConfigKey("endpoint", .url, help: "s3: the store's URL, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:8333"),
        ConfigKey("bucket", .string, help: "s3: the bucket (it must exist)"),
        ConfigKey("region", .string, default: "us-east-1", help: "s3: the region requests are signed for"),
        ConfigKey("prefix", .string, help: "s3: a folder in the bucket for everything Anchorage stores (default: the bucket's root)"),
        ConfigKey("addressing", .oneOf(["path", "virtual"]), default: "path", help: "s3: path (ENDPOINT/BUCKET/KEY) or virtual (BUCKET.HOST/KEY)"),
        ConfigKey("access_key_file", .path, help: "s3: file holding the access key id (default: $AWS_ACCESS_KEY_ID)"),
        ConfigKey("secret_key_file", .path, help: "s3: file holding the secret access key (default: $AWS_SECRET_ACCESS_KEY)"),
        ConfigKey("ca_file", .path, help: "s3: CA bundle for the store's TLS certificate"),
        ConfigKey("tls_verify", .bool, default: "true", help: "s3: verify the store's TLS certificate"),
        ConfigKey("redirect", .oneOf(["off", "presigned"]), default: "off", help: "s3: presigned: a blob missing from this node's disk but in the bucket is answered with a 307 to a presigned bucket URL (clients must reach the store)"),
    ])

    static let local = StorageConfig(backend: .local, s3: nil)

    init(backend: Backend, s3: S3?) {
        self.backend = backend
        self.s3 = s3
    }

    init(_ r: SectionReader, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) {
        backend = Backend(rawValue: r.string("backend") ?? "local") ?? .local
        guard backend == .s3 else {
            s3 = nil
            return
        }
        guard let endpoint = r.string("endpoint") else { throw r.error("backend", "backend = s3 needs 'endpoint' (the store's URL)") }
        guard let bucket = r.string("bucket"), !bucket.isEmpty else { throw r.error("backend", "backend = s3 needs 'bucket'") }
        var prefix = (r.string("prefix") ?? "").trimmed("/")
        if !prefix.isEmpty { prefix += "/" }
        let accessKey = try StorageConfig.credential(r, key: "access_key_file", env: "AWS_ACCESS_KEY_ID", environment)
        let secretKey = try StorageConfig.credential(r, key: "secret_key_file", env: "AWS_SECRET_ACCESS_KEY", environment)
        s3 = S3(endpoint: endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint, bucket: bucket, region: r.string("region") ?? "us-east-1",
                prefix: prefix, addressing: Addressing(rawValue: r.string("addressing") ?? "path") ?? .path,
                accessKey: accessKey, secretKey: secretKey, caFile: r.string("ca_file"), tlsVerify: r.bool("tls_verify"),
                redirect: r.string("redirect") == "presigned")
    }

    /// From the file the key names, else from the environment variable.
    private static func credential(_ r: SectionReader, key: String, env: String, _ environment: [String: String]) throws(ConfigError) -> String {
        if let path = r.string(key) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw r.error(key, "cannot read \(path)")
            }
            let value = text.trimmed(" \t\r\n")
            guard !value.isEmpty else { throw r.error(key, "\(path) is empty") }
            return value
        }
        guard let value = environment[env], !value.isEmpty else {
            throw r.error("backend", "backend = s3 needs credentials: set \(key) or the environment variable \(env)")
        }
        return value
    }

    func render() -> [(String, String)] {
        guard let s3 else { return [("backend", "local")] }
        return [("backend", "s3"), ("endpoint", s3.endpoint), ("bucket", s3.bucket), ("region", s3.region), ("prefix", s3.prefix),
                ("addressing", s3.addressing.rawValue), ("tls_verify", s3.tlsVerify ? "true" : "false"), ("redirect", s3.redirect ? "presigned" : "off")] + (s3.caFile.map { [("ca_file", $0)] } ?? [])
    }
}
