import Foundation

/// What a pushed manifest refers to, read from its JSON: the blobs it needs
/// (config, layers, an artifact's blobs), the manifests an index lists, its
/// subject, and what a referrers listing shows of it. An image manifest, an
/// index, a Docker v2 list or an OCI artifact all parse; anything else is
/// `MANIFEST_INVALID`.
struct ManifestDocument {
    let mediaType: String
    let blobs: [Digest]
    let children: [Digest]
    let subject: Digest?
    /// For referrers: `artifactType`, else the config's media type.
    let artifactType: String?
    let annotations: [String: String]

    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let ociIndex = "application/vnd.oci.image.index.v1+json"

    /// `contentType` is the request's; the document's own `mediaType`, when
    /// present, must agree with it.
    static func parse(_ bytes: [UInt8], contentType: String?) -> Result<ManifestDocument, RegistryError> {
        func invalid(_ why: String) -> Result<ManifestDocument, RegistryError> {
            .failure(RegistryError(.manifestInvalid, .badRequest, "manifest invalid: \(why)"))
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            return invalid("not a JSON object")
        }
        guard (obj["schemaVersion"] as? Int) == 2 else { return invalid("schemaVersion must be 2") }
        let declared = obj["mediaType"] as? String
        let header = contentType?.split(separator: ";").first.map { $0.trimmed(" ") }
        if let declared, let header, !header.isEmpty, header != declared, header != "application/json" {
            return invalid("Content-Type \(header) does not match the manifest's mediaType \(declared)")
        }
        let type = declared ?? (header.flatMap { $0.isEmpty || $0 == "application/json" ? nil : $0 })
            ?? (obj["manifests"] != nil ? ociIndex : ociManifest)
        guard type.utf8.count <= 255, type.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { return invalid("invalid media type") }

        func descriptor(_ any: Any?) -> Result<(Digest, [String: Any])?, RegistryError> {
            guard let any else { return .success(nil) }
            guard let d = any as? [String: Any], let text = d["digest"] as? String else {
                return .failure(RegistryError(.manifestInvalid, .badRequest, "manifest invalid: a descriptor without a digest"))
            }
            guard let digest = Digest(text) else {
                return .failure(RegistryError(.digestInvalid, .badRequest, "invalid digest in manifest", detail: String(text.prefix(200))))
            }
            return .success((digest, d))
        }
        func descriptors(_ key: String) -> Result<[Digest], RegistryError> {
            guard let list = obj[key] else { return .success([]) }
            guard let array = list as? [Any] else { return .failure(RegistryError(.manifestInvalid, .badRequest, "manifest invalid: \(key) is not a list")) }
            var out: [Digest] = []
            for item in array {
                switch descriptor(item) {
                case .failure(let e): return .failure(e)
                case .success(let d): if let d { out.append(d.0) }
                }
            }
            return .success(out)
        }
        var blobs: [Digest] = []
        var configType: String?
        switch descriptor(obj["config"]) {
        case .failure(let e): return .failure(e)
        case .success(let c):
            if let c {
                blobs.append(c.0)
                configType = c.1["mediaType"] as? String
            }
        }
        for key in ["layers", "blobs"] {
            switch descriptors(key) {
            case .failure(let e): return .failure(e)
            case .success(let ds): blobs += ds
            }
        }
        let children: [Digest]
        switch descriptors("manifests") {
        case .failure(let e): return .failure(e)
        case .success(let ds): children = ds
        }
        let subject: Digest?
        switch descriptor(obj["subject"]) {
        case .failure(let e): return .failure(e)
        case .success(let s): subject = s?.0
        }
        let annotations = (obj["annotations"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:]
        return .success(ManifestDocument(mediaType: type, blobs: blobs, children: children, subject: subject,
                                         artifactType: obj["artifactType"] as? String ?? configType, annotations: annotations))
    }

    /// This manifest as an entry of a referrers index.
    func descriptor(_ d: Digest, size: Int) -> [String: Any] {
        var out: [String: Any] = ["mediaType": mediaType, "digest": d.description, "size": size]
        if let artifactType { out["artifactType"] = artifactType }
        if !annotations.isEmpty { out["annotations"] = annotations }
        return out
    }
}

extension HostedStore {
    /// A stored hosted manifest, parsed; nil when absent or not one.
    func document(_ d: Digest) -> ManifestDocument? {
        guard let bytes = readAll(d, limit: HostedRepository.maxManifestBytes) else { return nil }
        return try? ManifestDocument.parse(bytes, contentType: content.mediaType(d)).get()
    }

    /// What hosted manifests and tags name that the store does not hold: a
    /// lost manifest or blob shows here (`anchorage verify`).
    func missingReferences() -> [String] {
        var out: [String] = []
        for ns in namespaces() {
            for repo in repositories(ns) {
                for r in revisions(ns, repo) {
                    guard hasContent(r) else {
                        out.append("\(ns)/\(repo.value)@\(r): manifest missing")
                        continue
                    }
                    guard let doc = document(r) else { continue }
                    for d in doc.blobs + doc.children where !hasContent(d) {
                        out.append("\(ns)/\(repo.value)@\(r): references \(d), which is missing")
                    }
                }
                for t in tags(ns, repo) {
                    if let d = resolve(ns, repo, t), !hasRevision(ns, repo, d) { out.append("\(ns)/\(repo.value):\(t.value): names \(d), which is missing") }
                }
            }
        }
        return out
    }
}
