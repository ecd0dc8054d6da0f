import Foundation

/// What the console shows of a manifest: its descriptors with sizes and
/// platforms, read leniently (a cached upstream manifest is shown as it is,
/// whatever it holds).
struct ImageManifest: Sendable {
    struct Descriptor: Sendable {
        let digest: Digest
        let size: Int64
        let mediaType: String
        /// os/architecture/variant, for an index's entries.
        let platform: String?
        let artifactType: String?
    }

    let mediaType: String
    let config: Descriptor?
    let layers: [Descriptor]
    /// An index's manifests.
    let children: [Descriptor]
    let subject: Digest?
    let artifactType: String?
    let annotations: [String: String]

    var isIndex: Bool { !children.isEmpty || mediaType.hasSuffix("index.v1+json") || mediaType.hasSuffix("manifest.list.v2+json") }

    /// Every blob the manifest itself names (config first).
    var blobs: [Descriptor] { (config.map { [$0] } ?? []) + layers }

    static func parse(_ bytes: [UInt8], storedType: String?) -> ImageManifest? {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return nil }
        func descriptor(_ any: Any?) -> Descriptor? {
            guard let d = any as? [String: Any], let digest = (d["digest"] as? String).flatMap(Digest.init) else { return nil }
            var platform: String?
            if let p = d["platform"] as? [String: Any] {
                platform = [p["os"], p["architecture"], p["variant"]].compactMap { $0 as? String }.joined(separator: "/")
            }
            return Descriptor(digest: digest, size: (d["size"] as? NSNumber)?.int64Value ?? 0, mediaType: d["mediaType"] as? String ?? "",
                              platform: platform, artifactType: d["artifactType"] as? String)
        }
        let list = { (key: String) in ((obj[key] as? [Any]) ?? []).compactMap(descriptor) }
        let config = descriptor(obj["config"])
        return ImageManifest(
            mediaType: obj["mediaType"] as? String ?? storedType ?? "",
            config: config, layers: list("layers") + list("blobs"), children: list("manifests"),
            subject: descriptor(obj["subject"])?.digest,
            artifactType: obj["artifactType"] as? String ?? config.map(\.mediaType),
            annotations: (obj["annotations"] as? [String: String]) ?? [:])
    }
}

/// Where a repository's content is read from: the cache or hosted storage.
enum ContentSource: Sendable {
    case cache(FileBlobStore)
    /// Pushed content: with an object store, read from the bucket when this
    /// node has no copy.
    case hosted(HostedStore)
    static let maxManifestBytes = 4 << 20

    var isHosted: Bool { if case .hosted = self { true } else { false } }

    func readAll(_ d: Digest, limit: Int) -> [UInt8]? {
        switch self {
        case .cache(let s): s.readAll(d, limit: limit)
        case .hosted(let h): h.readAll(d, limit: limit)
        }
    }

    func mediaType(_ d: Digest) -> String? {
        switch self {
        case .cache(let s): s.mediaType(d)
        case .hosted(let h): h.content.mediaType(d)
        }
    }

    func stat(_ d: Digest) -> Int64? {
        switch self {
        case .cache(let s): s.stat(d)
        case .hosted(let h): h.stat(d)
        }
    }

    func contains(_ d: Digest) -> Bool {
        switch self {
        case .cache(let s): s.contains(d)
        case .hosted(let h): h.hasContent(d)
        }
    }

    func manifest(_ d: Digest) -> ImageManifest? {
        guard let bytes = readAll(d, limit: ContentSource.maxManifestBytes) else { return nil }
        return ImageManifest.parse(bytes, storedType: mediaType(d))
    }

    func json(_ d: Digest, limit: Int) -> [String: Any]? {
        guard let bytes = readAll(d, limit: limit) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}
