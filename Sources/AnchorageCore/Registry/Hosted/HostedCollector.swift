import Foundation

/// Garbage collection and retention for hosted namespaces, online: pushes
/// and pulls go on while it runs (the Docker registry's `garbage-collect`
/// needs the registry read-only).
///
/// 1. Retention, per namespace: tags past `keep_tags` (newest first, by
///    when they were set; immutable tags are never removed) and manifests
///    no tag names after `delete_untagged_after` (an index's children and a
///    present subject's referrers stay).
/// 2. Mark: every manifest of every repository on disk, what it names, and
///    blob links younger than the grace period.
/// 3. Sweep, holding the store's lock: manifests and links that appeared
///    or were renewed since the mark saw them are marked too; then every
///    stored blob neither marked nor younger than the grace period is
///    removed. An upload in progress is a temp file, not a stored blob, so
///    it is never a candidate.
///
/// With an object store, the records and blobs swept are the bucket's, and
/// one node at a time collects (`CollectionLease`); pushes on other nodes
/// go on, protected by the grace period as pushes here are.
struct HostedCollector {
    let store: HostedStore
    let namespaces: [HostedConfig]

    struct Report: Sendable {
        var tags: [String] = []
        var manifests: [String] = []
        var blobs = 0
        var bytes: Int64 = 0
        /// Why nothing was collected (another node holds the lease).
        var skipped: String?

        func summary(dryRun: Bool) -> String {
            if let skipped { return "not collected: \(skipped)" }
            let verb = dryRun ? "would remove" : "removed"
            return "\(verb) \(blobs) blobs (\(ByteSize(bytes))), \(manifests.count) manifests, \(tags.count) tags"
        }
    }

    func run(dryRun: Bool, now: Int64 = CacheIndex.nowMillis()) -> Report {
        guard let shared = store.shared else { return collect(dryRun: dryRun, now: now) }
        let lease = CollectionLease(store: shared)
        if case .refused(let why) = lease.acquire(now: now) {
            var report = Report()
            report.skipped = why
            return report
        }
        defer { lease.release() }
        return collect(dryRun: dryRun, now: now)
    }

    private func collect(dryRun: Bool, now: Int64) -> Report {
        var report = Report()
        // A listing that failed reads as empty: nothing may be removed on
        // a mark that missed what the store did not answer.
        let failures = store.shared?.failures
        var unreadable = 0
        var gone = Set<String>()   // "ns/name@digest" removed (or, dry, to be)
        for config in namespaces {
            for repo in store.repositories(config.name) {
                applyRetention(config, repo, now: now, dryRun: dryRun, report: &report, gone: &gone)
            }
        }

        var marked = Set<Digest>()
        var staleLinks: [Digest: [(ns: String, name: RepositoryName)]] = [:]
        // What the mark saw: revisions, and links with their times.
        var seenRevisions = Set<String>()
        var seenLinks: [String: Int64] = [:]
        let graceFor = Dictionary(namespaces.map { ($0.name, $0.grace.milliseconds) }, uniquingKeysWith: { a, _ in a })
        let defaultGrace = HostedConfig(name: "-").grace.milliseconds
        for ns in store.namespaces() {
            let grace = graceFor[ns] ?? defaultGrace
            for repo in store.repositories(ns) {
                for r in store.revisions(ns, repo) {
                    seenRevisions.insert("\(ns)/\(repo.value)@\(r)")
                    if !gone.contains("\(ns)/\(repo.value)@\(r)") { mark(r, &marked, &unreadable) }
                }
                for l in store.layers(ns, repo) {
                    let t = store.layerTime(ns, repo, l)
                    seenLinks["\(ns)/\(repo.value)@\(l)"] = t
                    if now - t < grace { marked.insert(l) } else { staleLinks[l, default: []].append((ns, repo)) }
                }
            }
        }

        let blobGrace = namespaces.map(\.grace.milliseconds).max() ?? defaultGrace
        store.mutate {
            for ns in store.namespaces() {
                for repo in store.repositories(ns) {
                    for r in store.revisions(ns, repo) where !seenRevisions.contains("\(ns)/\(repo.value)@\(r)") { mark(r, &marked, &unreadable) }
                    for l in store.layers(ns, repo) where seenLinks["\(ns)/\(repo.value)@\(l)"] != store.layerTime(ns, repo, l) {
                        marked.insert(l)
                    }
                }
            }
            if let failures, store.shared?.failures != failures {
                report.skipped = "the object store failed during the collection: \(store.unavailable ?? "a request failed"); nothing removed"
                return
            }
            if unreadable > 0 {
                report.skipped = "\(unreadable) manifests could not be read from the object store; nothing removed"
                return
            }
            var victims: [(Digest, Int64)] = []
            store.forEachStored { d, size, written in
                guard !marked.contains(d), now - written >= blobGrace else { return }
                victims.append((d, size))
            }
            for (d, size) in victims {
                report.blobs += 1
                report.bytes += size
                if !dryRun { store.removeUnreferenced(d, links: staleLinks[d] ?? []) }
            }
        }
        return report
    }

    /// A manifest and everything it names.
    private func mark(_ d: Digest, _ marked: inout Set<Digest>, _ unreadable: inout Int) {
        marked.insert(d)
        guard let doc = store.document(d) else {
            // With an object store, a manifest this node cannot read now
            // may name anything: nothing is swept on such a mark.
            if store.shared != nil { unreadable += 1 }
            return
        }
        marked.formUnion(doc.blobs)
        marked.formUnion(doc.children)
    }


    private func applyRetention(_ config: HostedConfig, _ repo: RepositoryName, now: Int64, dryRun: Bool,
                                report: inout Report, gone: inout Set<String>) {
        let ns = config.name
        var tags = store.tags(ns, repo)
        if let keep = config.keepTags {
            let counted = tags.filter { t in config.retainMatching.contains { $0.matches(t.value) } && !config.isImmutable(t) }
                .map { ($0, store.tagTime(ns, repo, $0)) }
                .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.value > $1.0.value }
            for (t, _) in counted.dropFirst(keep) {
                report.tags.append("\(ns)/\(repo.value):\(t.value)")
                tags.removeAll { $0 == t }
                if !dryRun { _ = store.deleteTag(ns, repo, t) }
            }
        }
        guard let age = config.untaggedAfter?.milliseconds else { return }
        let revisions = store.revisions(ns, repo)
        let present = Set(revisions)
        let docs = Dictionary(revisions.compactMap { r in store.document(r).map { (r, $0) } }, uniquingKeysWith: { a, _ in a })
        let tagged = Set(tags.compactMap { store.resolve(ns, repo, $0) })
        let children = Set(docs.values.flatMap(\.children))
        for r in revisions where !tagged.contains(r) && !children.contains(r) {
            if let subject = docs[r]?.subject, present.contains(subject) { continue }
            guard now - store.revisionTime(ns, repo, r) >= age else { continue }
            report.manifests.append("\(ns)/\(repo.value)@\(r)")
            gone.insert("\(ns)/\(repo.value)@\(r)")
            if !dryRun { _ = store.deleteManifest(ns, repo, r, subject: docs[r]?.subject) }
        }
    }
}
