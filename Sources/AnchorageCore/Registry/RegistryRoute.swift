/// A parsed `/v2/…` request: which upstream, which resource.
enum RegistryRoute: Equatable {
    case base
    case manifest(RepositoryName, Reference)
    case blob(RepositoryName, Digest)
    case tags(RepositoryName)
}

/// Picks the upstream and parses the resource of a `/v2/` path. Nothing from
/// the path is used until it has passed the spec's grammar.
///
/// Upstream selection, in order: `?ns=HOST` (containerd) names a registry
/// section (an unknown one is an error, never a silent fallback); else a first
/// path component equal to a registry name is that upstream (podman mirror
/// locations with a path, plain clients); else the default upstream. Docker
/// Hub names of one component get `library/`.
struct RegistryRouter {
    let upstreams: [String: RegistryUpstream]
    let defaultUpstream: RegistryUpstream

    func route(path: String, ns: String?) -> Result<(RegistryUpstream, RegistryRoute), RegistryError> {
        guard path.hasPrefix("/v2/") || path == "/v2" else {
            return .failure(RegistryError(.nameUnknown, .notFound, "not a registry path"))
        }
        var upstream = defaultUpstream
        if let ns {
            guard let u = upstreams[ns] else {
                let known = upstreams.keys.sorted().joined(separator: ", ")
                return .failure(RegistryError(.nameUnknown, .notFound, "unknown upstream ns=\(ns); this mirror serves: \(known)", detail: ns))
            }
            upstream = u
        }
        let rest = path.dropFirst(path == "/v2" ? 3 : 4)
        if rest.isEmpty { return .success((upstream, .base)) }

        let namePart: Substring
        let resource: Substring
        var kind = ""
        if rest.hasSuffixBytes("/tags/list") {
            namePart = rest.dropLast("/tags/list".count)
            resource = ""
            kind = "tags"
        } else if let r = rest.lastRange(ofBytes: "/manifests/") {
            namePart = rest[..<r.lowerBound]
            resource = rest[r.upperBound...]
            kind = "manifests"
        } else if let r = rest.lastRange(ofBytes: "/blobs/") {
            namePart = rest[..<r.lowerBound]
            resource = rest[r.upperBound...]
            kind = "blobs"
        } else {
            return .failure(RegistryError(.unsupported, .notFound, "unknown registry endpoint"))
        }

        var nameText = namePart
        if ns == nil, let slash = nameText.utf8.firstIndex(of: UInt8(ascii: "/")), let u = upstreams[String(nameText[..<slash])] {
            upstream = u
            nameText = nameText[nameText.index(after: slash)...]
        }
        guard var name = RepositoryName(nameText) else {
            return .failure(RegistryError(.nameInvalid, .badRequest, "invalid repository name", detail: String(nameText.prefix(300))))
        }
        if upstream.isDockerHub, name.components.count == 1, let lib = RepositoryName("library/\(name.value)") {
            name = lib
        }
        switch kind {
        case "tags":
            return .success((upstream, .tags(name)))
        case "manifests":
            guard let ref = Reference(resource) else {
                return .failure(resource.containsBytes(":")
                    ? RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200)))
                    : RegistryError(.tagInvalid, .badRequest, "invalid tag", detail: String(resource.prefix(200))))
            }
            return .success((upstream, .manifest(name, ref)))
        default:
            if resource == "uploads" || resource.hasPrefix("uploads/") {
                return .failure(RegistryError(.unsupported, .methodNotAllowed, "uploads are not supported: this is a read-only pull-through mirror"))
            }
            guard let d = Digest(resource) else {
                return .failure(RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200))))
            }
            return .success((upstream, .blob(name, d)))
        }
    }
}
