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
        if path.utf8.count <= 4 { return .success((upstream, .base)) }   // "/v2" or "/v2/": no name
        // Sliced on the path's bytes (the Substring searches and index walks
        // were ~3% of a manifest hit's samples), then cut at UTF-8 offsets.
        let found = path.withUTF8Bytes(PathParts.init)
        guard let parts = found else {
            return .failure(RegistryError(.unsupported, .notFound, "unknown registry endpoint"))
        }
        let utf8 = path.utf8
        func at(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
        var nameText = path[at(parts.name.lowerBound)..<at(parts.name.upperBound)]
        let resource = path[at(parts.resource)...]
        if ns == nil, let slash = parts.firstSlash, let u = upstreams[String(path[at(parts.name.lowerBound)..<at(slash)])] {
            upstream = u
            nameText = path[at(slash + 1)..<at(parts.name.upperBound)]
        }
        guard var name = RepositoryName(nameText) else {
            return .failure(RegistryError(.nameInvalid, .badRequest, "invalid repository name", detail: String(nameText.prefix(300))))
        }
        if upstream.isDockerHub, name.components.count == 1, let lib = RepositoryName("library/\(name.value)") {
            name = lib
        }
        switch parts.kind {
        case .tags:
            return .success((upstream, .tags(name)))
        case .manifests:
            guard let ref = Reference(resource) else {
                return .failure(resource.containsBytes(":")
                    ? RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200)))
                    : RegistryError(.tagInvalid, .badRequest, "invalid tag", detail: String(resource.prefix(200))))
            }
            return .success((upstream, .manifest(name, ref)))
        case .blobs:
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

/// Where a `/v2/…` path's parts are, as byte offsets: `name` `/tags/list`
/// (matched as a suffix), or `name` `/manifests/` or `/blobs/` (the last
/// one) then the resource. Nil for another endpoint.
private struct PathParts {
    enum Kind { case tags, manifests, blobs }
    let kind: Kind
    let name: Range<Int>
    let resource: Int
    /// The first "/" in the name, if any (a registry's name may lead).
    let firstSlash: Int?

    /// `p` is a path longer than "/v2/" that starts with it.
    init?(_ p: UnsafeBufferPointer<UInt8>) {
        let start = 4   // after "/v2/"
        guard p.count > start else { return nil }
        let rest = UnsafeBufferPointer(rebasing: p[start...])
        let end: Int
        if rest.count >= 10, rest[(rest.count - 10)...].elementsEqual("/tags/list".utf8) {
            (kind, end, resource) = (.tags, rest.count - 10, p.count)
        } else if let m = ("/manifests/" as StaticString).withUTF8Buffer({ ByteSearch.last($0, in: rest) }) {
            (kind, end, resource) = (.manifests, m, start + m + 11)
        } else if let m = ("/blobs/" as StaticString).withUTF8Buffer({ ByteSearch.last($0, in: rest) }) {
            (kind, end, resource) = (.blobs, m, start + m + 7)
        } else {
            return nil
        }
        name = start..<(start + end)
        firstSlash = UnsafeBufferPointer(rebasing: rest[..<end]).firstIndex(of: UInt8(ascii: "/")).map { start + $0 }
    }
}
