import Foundation

/// One image as the console shows it: tags and digest, an index's
/// platforms, layers with how many other repositories share each, the
/// config's metadata, referrers, and the commands that pull it.
struct ImageInspector {
    let mirror: Mirror
    let catalog: RepositoryCatalog

    static let helmConfigType = "application/vnd.cncf.helm.config.v1+json"
    static let maxConfigBytes = 1 << 20

    func inspect(_ key: RepositoryKey, _ ref: Reference, host: String) -> Result<[String: Any], ConsoleError> {
        guard let entry = catalog.entry(key) else { return .failure(.notFound("no repository \(key.path)")) }
        guard let digest = entry.resolve(ref) else { return .failure(.notFound("no tag \(ref) in \(key.path)")) }
        let src = catalog.source(key.kind)
        guard let size = src.stat(digest), let m = src.manifest(digest) else {
            return .failure(.notFound("manifest \(digest) is not \(key.kind == .cached ? "cached" : "stored")"))
        }
        // Only a manifest of this repository (tagged, one of its revisions, or
        // a child of one) is shown under its name.
        let known = entry.manifests.contains(digest) || entry.manifests.contains { catalog.footprint($0, src)[digest] != nil }
        guard known else { return .failure(.notFound("manifest \(digest) is not in \(key.path)")) }

        let owners = catalog.entries().owners
        var out: [String: Any] = [
            "repository": ["kind": key.kind.rawValue, "source": key.source, "name": key.name.value],
            "digest": digest.description, "media_type": m.mediaType, "size": size,
            "tags": entry.tags.filter { $0.digest == digest }.map(\.tag).sorted(),
            "artifact_type": m.artifactType ?? NSNull(),
            "annotations": m.annotations,
        ]
        if key.kind == .hosted {
            let ms = mirror.hostedStore.revisionTime(key.source, key.name, digest)
            out["pushed_at"] = ms > 0 ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) : NSNull()
            out["pushed_by"] = mirror.hostedStore.revisionPusher(key.source, key.name, digest) ?? NSNull()
        }
        if m.isIndex {
            out["platforms"] = m.children.map { c -> [String: Any] in
                ["platform": c.platform ?? "", "digest": c.digest.description, "size": c.size, "media_type": c.mediaType,
                 "available": src.contains(c.digest)]
            }
        } else {
            out["layers"] = m.layers.map { l -> [String: Any] in
                ["digest": l.digest.description, "size": l.size, "media_type": l.mediaType,
                 "shared_by": max(0, (owners[l.digest] ?? 1) - 1), "available": src.contains(l.digest)]
            }
            out["total_size"] = m.blobs.reduce(Int64(0)) { $0 + $1.size }
            if let c = m.config { out["config"] = config(c, src) }
        }
        out["referrers"] = referrers(key, digest)
        let chart = m.config?.mediaType == ImageInspector.helmConfigType
        out["pull"] = PullCommands(host: host, key: key, defaultUpstream: mirror.config.defaultRegistry.name)
            .commands(ref: ref, digest: digest, chart: chart).map { ["label": $0.label, "command": $0.command] }
        return .success(out)
    }

    private func config(_ c: ImageManifest.Descriptor, _ src: ContentSource) -> [String: Any] {
        var out: [String: Any] = ["digest": c.digest.description, "size": c.size, "media_type": c.mediaType]
        guard c.size <= ImageInspector.maxConfigBytes, let obj = src.json(c.digest, limit: ImageInspector.maxConfigBytes) else {
            out["available"] = false
            return out
        }
        out["available"] = true
        for key in ["created", "author", "architecture", "os", "variant"] { out[key] = obj[key] as? String ?? NSNull() }
        let cfg = obj["config"] as? [String: Any] ?? [:]
        out["labels"] = (cfg["Labels"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:]
        out["entrypoint"] = cfg["Entrypoint"] as? [String] ?? []
        out["cmd"] = cfg["Cmd"] as? [String] ?? []
        out["env"] = cfg["Env"] as? [String] ?? []
        out["working_dir"] = cfg["WorkingDir"] as? String ?? ""
        out["user"] = cfg["User"] as? String ?? ""
        out["exposed_ports"] = ((cfg["ExposedPorts"] as? [String: Any]) ?? [:]).keys.sorted()
        return out
    }

    private func referrers(_ key: RepositoryKey, _ d: Digest) -> [[String: Any]] {
        switch key.kind {
        case .hosted:
            let store = mirror.hostedStore
            return store.referrers(key.source, key.name, subject: d).compactMap { r -> [String: Any]? in
                guard store.hasRevision(key.source, key.name, r), let doc = store.document(r) else { return nil }
                return ["digest": r.description, "media_type": doc.mediaType, "artifact_type": doc.artifactType ?? NSNull(),
                        "annotations": doc.annotations]
            }
        case .cached:
            guard let body = mirror.referrers.remembered(upstream: key.source, key.name, d),
                  let index = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return [] }
            return ((index["manifests"] as? [[String: Any]]) ?? []).map { m -> [String: Any] in
                ["digest": m["digest"] as? String ?? "", "media_type": m["mediaType"] as? String ?? "",
                 "artifact_type": m["artifactType"] as? String ?? NSNull(),
                 "annotations": (m["annotations"] as? [String: String]) ?? [:]]
            }
        }
    }
}

/// The commands that pull an image through this daemon, for the host the
/// browser reached it by.
struct PullCommands {
    let host: String
    let key: RepositoryKey
    let defaultUpstream: String

    /// `Host` as the browser sent it when it is a plain host[:port]; else a placeholder.
    static func host(_ header: String?) -> String {
        guard let h = header, !h.isEmpty, h.utf8.count <= 255,
              h.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") })
        else { return "MIRROR:5000" }
        return h
    }

    func commands(ref: Reference, digest: Digest, chart: Bool) -> [(label: String, command: String)] {
        let suffix: String
        switch ref {
        case .tag(let t): suffix = ":\(t.value)"
        case .digest(let d): suffix = "@\(d)"
        }
        let path = "\(host)/\(key.path)"
        var out: [(String, String)] = []
        if chart {
            let version: String
            if case .tag(let t) = ref { version = " --version \(t.value)" } else { version = "" }
            out.append(("helm", "helm pull oci://\(path)\(version) --plain-http"))
        }
        out.append(("docker", "docker pull \(path)\(suffix)"))
        out.append(("podman", "podman pull --tls-verify=false \(path)\(suffix)"))
        if key.kind == .cached {
            // containerd with a hosts.toml for the upstream that points here.
            let upstreamName = key.source == defaultUpstream && !key.source.contains(".") ? "docker.io" : key.source
            out.append(("containerd", "ctr images pull --hosts-dir /etc/containerd/certs.d \(upstreamName)/\(key.name.value)\(suffix)"))
            out.append(("hosts.toml", "# /etc/containerd/certs.d/\(upstreamName)/hosts.toml\n[host.\"http://\(host)\"]\n  capabilities = [\"pull\", \"resolve\"]"))
        } else {
            out.append(("containerd", "ctr images pull --plain-http \(path)\(suffix)"))
        }
        return out
    }
}
