import Foundation
import Synchronization

/// A repository the console lists: hosted (pushed to a namespace) or cached
/// (pulled through from an upstream registry).
struct RepositoryKey: Hashable, Sendable {
    enum Kind: String, Sendable { case hosted, cached }
    let kind: Kind
    /// The hosted namespace or the upstream registry's name.
    let source: String
    let name: RepositoryName

    /// The path clients pull it by (`source/name`; a default upstream's
    /// names also work without the prefix).
    var path: String { "\(source)/\(name.value)" }
}

/// Every hosted and cached repository with its tags and sizes. Sizes count
/// each blob once per repository (manifests, configs, layers, an index's
/// children); the unique size is what no other repository shares.
final class RepositoryCatalog: Sendable {
    struct Entry: Sendable {
        let key: RepositoryKey
        var tags: [(tag: String, digest: Digest)] = []
        /// Manifests the repository holds (tagged or not).
        var manifests: [Digest] = []
        var size: Int64 = 0
        var uniqueSize: Int64 = 0
        var lastPull = 0        // unix seconds
        var lastPush: Int64 = 0 // unix ms
        var pinned = false

        /// The manifest a tag names here, or the digest itself.
        func resolve(_ ref: Reference) -> Digest? {
            switch ref {
            case .tag(let t): tags.first { $0.tag == t.value }?.digest
            case .digest(let d): d
            }
        }
    }

    /// The blobs a manifest needs, by digest with size (itself included).
    typealias Footprint = [Digest: Int64]

    let mirror: Mirror
    /// Manifests never change under their digest, so their footprints are
    /// kept (per store: what one store holds says nothing of the other).
    private struct Known: Hashable {
        let digest: Digest
        let hosted: Bool
    }
    private let footprints = Mutex<[Known: Footprint]>([:])
    static let maxRemembered = 100_000

    init(mirror: Mirror) { self.mirror = mirror }

    func source(_ kind: RepositoryKey.Kind) -> ContentSource {
        kind == .hosted ? .hosted(mirror.hostedStore) : .cache(mirror.store)
    }

    /// All repositories with tags, sizes and sharing; `owners` maps each
    /// blob to how many repositories name it.
    func entries() -> (entries: [Entry], owners: [Digest: Int]) {
        var entries = hostedEntries() + cachedEntries()
        var owners: [Digest: Int] = [:]
        var prints: [Footprint] = []
        let pins = PinSet.load(mirror.layout)
        let uses = mirror.counters.repositories
        let defaultUpstream = mirror.config.defaultRegistry.name
        for i in entries.indices {
            let src = source(entries[i].key.kind)
            var all = Footprint()
            for d in entries[i].manifests { all.merge(footprint(d, src)) { a, _ in a } }
            prints.append(all)
            for d in all.keys { owners[d, default: 0] += 1 }
            entries[i].size = all.values.reduce(0, +)
            let key = entries[i].key
            entries[i].pinned = key.kind == .cached && entries[i].tags.contains { pins.contains($0.digest) }
            let label = key.kind == .cached && key.source == defaultUpstream ? key.name.value : key.path
            entries[i].lastPull = uses[label]?.lastPull ?? 0
        }
        for i in entries.indices {
            entries[i].uniqueSize = prints[i].filter { owners[$0.key] == 1 }.values.reduce(0, +)
        }
        return (entries, owners)
    }

    func entry(_ key: RepositoryKey) -> Entry? {
        switch key.kind {
        case .hosted: hostedEntry(key.source, key.name)
        case .cached: cachedEntry(key.source, key.name, tags: nil)
        }
    }

    private func hostedEntries() -> [Entry] {
        mirror.config.hosted.flatMap { ns in
            mirror.hostedStore.repositories(ns.name).compactMap { hostedEntry(ns.name, $0) }
        }
    }

    private func hostedEntry(_ ns: String, _ name: RepositoryName) -> Entry? {
        let store = mirror.hostedStore
        guard mirror.config.hosted.contains(where: { $0.name == ns }) else { return nil }
        var e = Entry(key: RepositoryKey(kind: .hosted, source: ns, name: name))
        for t in store.tags(ns, name) {
            guard let d = store.resolve(ns, name, t) else { continue }
            e.tags.append((t.value, d))
            e.lastPush = max(e.lastPush, store.tagTime(ns, name, t))
        }
        e.manifests = store.revisions(ns, name)
        for d in e.manifests { e.lastPush = max(e.lastPush, store.revisionTime(ns, name, d)) }
        return e.manifests.isEmpty && e.tags.isEmpty ? nil : e
    }

    private func cachedEntries() -> [Entry] {
        CacheBrowser.repositories(mirror.layout).compactMap { r in
            RepositoryName(r.name).flatMap { cachedEntry(r.upstream, $0, tags: r.tags) }
        }
    }

    private func cachedEntry(_ upstream: String, _ name: RepositoryName, tags: [String]?) -> Entry? {
        let names = tags ?? CacheBrowser.tagNames(mirror.layout, upstream: upstream, name: name)
        var e = Entry(key: RepositoryKey(kind: .cached, source: upstream, name: name))
        for t in names {
            guard let tag = Tag(t), let rec = mirror.tagIndex.get(upstream: upstream, name: name, tag: tag) else { continue }
            e.tags.append((t, rec.digest))
        }
        e.manifests = Array(Set(e.tags.map(\.digest)))
        return e.tags.isEmpty ? nil : e
    }

    /// A manifest's blobs with sizes; an index's children count with theirs.
    func footprint(_ d: Digest, _ src: ContentSource, depth: Int = 0) -> Footprint {
        let key = Known(digest: d, hosted: src.isHosted)
        if let known = footprints.withLock({ $0[key] }) { return known }
        guard let size = src.stat(d), let m = src.manifest(d) else { return [:] }
        var out: Footprint = [d: size]
        for b in m.blobs { out[b.digest] = b.size }
        if depth == 0 {
            for c in m.children { out.merge(footprint(c.digest, src, depth: 1)) { a, _ in a } }
        }
        footprints.withLock { f in
            if f.count >= RepositoryCatalog.maxRemembered { f.removeAll() }
            f[key] = out
        }
        return out
    }
}
