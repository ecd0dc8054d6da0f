import Glibc

/// A parsed `/v2/…` request: which resource of the repository.
enum RegistryRoute: Equatable {
    case base
    case manifest(RepositoryName, Reference)
    case blob(RepositoryName, Digest)
    case tags(RepositoryName)
    /// `/v2/<name>/blobs/uploads/[<id>]`: the push endpoints.
    case uploads(RepositoryName, UploadID?)
    /// `/v2/<name>/referrers/<digest>`: what refers to a manifest (signatures, SBOMs).
    case referrers(RepositoryName, Digest)
}

/// An upload's id as it appears in its `Location`: letters, digits and `-`.
struct UploadID: Hashable, Sendable {
    let value: String
    init?(_ s: some StringProtocol) {
        guard !s.isEmpty, s.utf8.count <= 64, s.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "-") }) else { return nil }
        value = String(s)
    }
}

/// Picks the repository and parses the resource of a `/v2/` path. Nothing
/// from the path is used until it has passed the spec's grammar.
///
/// Repository selection, in order: `?ns=HOST` (containerd) names a
/// repository (an unknown one is an error, never a silent fallback); else a
/// first path component equal to a repository's name is that repository
/// (podman mirror locations with a path, plain clients); else the default.
/// The repository then normalises the name (Docker Hub's `library/`).
struct RegistryRouter {
    let repositories: [String: any Repository]
    let defaultRepository: any Repository

    func route(path: String, ns: String?) -> Result<(any Repository, RegistryRoute), RegistryError> {
        guard path.hasPrefix("/v2/") || path == "/v2" else {
            return .failure(RegistryError(.nameUnknown, .notFound, "not a registry path"))
        }
        var repository = defaultRepository
        if let ns {
            guard let u = repositories[ns] else {
                let known = repositories.keys.sorted().joined(separator: ", ")
                return .failure(RegistryError(.nameUnknown, .notFound, "unknown upstream ns=\(ns); this mirror serves: \(known)", detail: ns))
            }
            repository = u
        }
        if path.utf8.count <= 4 { return .success((repository, .base)) }   // "/v2" or "/v2/": no name
        // Sliced on the path's bytes (every request pays for it), then cut
        // at UTF-8 offsets.
        let found = path.withUTF8Bytes(PathParts.init)
        guard let parts = found else {
            return .failure(RegistryError(.unsupported, .notFound, "unknown registry endpoint"))
        }
        let utf8 = path.utf8
        func at(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
        var nameText = path[at(parts.name.lowerBound)..<at(parts.name.upperBound)]
        let resource = path[at(parts.resource)...]
        if ns == nil, let slash = parts.firstSlash, let u = repositories[String(path[at(parts.name.lowerBound)..<at(slash)])] {
            repository = u
            nameText = path[at(slash + 1)..<at(parts.name.upperBound)]
        }
        guard let parsed = RepositoryName(nameText) else {
            return .failure(RegistryError(.nameInvalid, .badRequest, "invalid repository name", detail: String(nameText.prefix(300))))
        }
        let name = repository.normalize(parsed)
        switch parts.kind {
        case .tags:
            return .success((repository, .tags(name)))
        case .manifests:
            guard let ref = Reference(resource) else {
                // A reference that is no tag names no manifest: 404, as the
                // distribution registry answers and conformance suites expect.
                return .failure(resource.containsBytes(":")
                    ? RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200)))
                    : RegistryError(.manifestUnknown, .notFound, "manifest unknown: not a valid tag", detail: String(resource.prefix(200))))
            }
            return .success((repository, .manifest(name, ref)))
        case .blobs:
            if resource == "uploads" || resource == "uploads/" {
                return .success((repository, .uploads(name, nil)))
            }
            if resource.hasPrefix("uploads/") {
                guard let id = UploadID(resource.dropFirst(8)) else {
                    return .failure(RegistryError(.blobUploadUnknown, .notFound, "blob upload unknown", detail: String(resource.dropFirst(8).prefix(80))))
                }
                return .success((repository, .uploads(name, id)))
            }
            guard let d = Digest(resource) else {
                return .failure(RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200))))
            }
            return .success((repository, .blob(name, d)))
        case .referrers:
            guard let d = Digest(resource) else {
                return .failure(RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(resource.prefix(200))))
            }
            return .success((repository, .referrers(name, d)))
        }
    }
}

/// Where a `/v2/…` path's parts are, as byte offsets: `name` `/tags/list`
/// (matched as a suffix), or `name` then the last of `/manifests/`,
/// `/blobs/` or `/referrers/` then the resource. Nil for another endpoint.
private struct PathParts {
    enum Kind { case tags, manifests, blobs, referrers }
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
        } else {
            // The marker that comes last: a name may contain the others.
            let markers: [(Kind, StaticString)] = [(.manifests, "/manifests/"), (.blobs, "/blobs/"), (.referrers, "/referrers/")]
            var found: (kind: Kind, at: Int, length: Int)?
            for (k, marker) in markers {
                if let m = marker.withUTF8Buffer({ ByteSearch.last($0, in: rest) }), m > found?.at ?? -1 {
                    found = (k, m, marker.utf8CodeUnitCount)
                }
            }
            guard let found else { return nil }
            (kind, end, resource) = (found.kind, found.at, start + found.at + found.length)
        }
        name = start..<(start + end)
        firstSlash = UnsafeBufferPointer(rebasing: rest[..<end]).firstIndex(of: UInt8(ascii: "/")).map { start + $0 }
    }
}
