import Foundation

/// Phase A of a sync: rules become items (tags/list, index.yaml), and each
/// item's manifests are fetched and verified (`ManifestService`, as for a
/// pull) to learn the exact blobs it needs, so a dry run can report bytes
/// without fetching any blob.
struct SyncPlanner {
    let mirror: Mirror
    let dryRun: Bool

    private var config: Config { mirror.config }

    // MARK: resolution

    func resolve(_ rule: SyncConfig.Rule) -> Result<[SyncItem], RuleError> {
        let key = PinSet.key(forRule: rule.text)
        switch rule.rule {
        case .image(let registry, let name, let selector):
            guard let up = mirror.upstreams[registry] else { return .failure(RuleError("no [registry \"\(registry)\"]")) }
            let refs: [Reference]
            switch selector {
            case .tag(let t): refs = [.tag(t)]
            case .digest(let d): refs = [.digest(d)]
            case .regex, .range:
                switch listTags(up, name) {
                case .failure(let e): return .failure(RuleError("tags/list: \(e)"))
                case .success(let tags):
                    var matching = tags.filter { tag in
                        if case .regex(let p) = selector, let re = try? Regex(p) { return tag.contains(re) }
                        if case .range(let r) = selector { return r.contains(tag) }
                        return false
                    }
                    matching.sort { SemanticVersion.precedes($1, $0) }   // newest first
                    if let k = config.sync.keepLatest { matching = Array(matching.prefix(k)) }
                    refs = matching.compactMap { Tag($0).map(Reference.tag) }
                    if refs.isEmpty { return .failure(RuleError("no tag matches \(selector)")) }
                }
            }
            return .success(refs.map { SyncItem(target: .image(up, name, $0), ruleKey: key, into: rule.into) })
        case .chart(let repoName, let chart, let range):
            guard let repo = mirror.charts.repositories[repoName] else { return .failure(RuleError("no [charts \"\(repoName)\"]")) }
            let (snap, err) = repo.currentIndex()
            guard let snap else { return .failure(RuleError("index.yaml: \(err ?? "unavailable")")) }
            var versions = (snap.versions[chart] ?? []).map(\.version).filter { range?.contains($0) ?? true }
            versions.sort { SemanticVersion.precedes($1, $0) }
            if let k = config.sync.keepLatest { versions = Array(versions.prefix(k)) }
            if versions.isEmpty { return .failure(RuleError("no version of \(chart) matches")) }
            return .success(versions.map { SyncItem(target: .chart(repo, file: "\(chart)-\($0).tgz"), ruleKey: key) })
        }
    }

    private func listTags(_ up: RegistryUpstream, _ name: RepositoryName) -> Result<[String], UpstreamError> {
        retryingOutages {
            let sink = CollectingSink(limit: 16 << 20)
            switch up.request("GET", path: "\(name.value)/tags/list", repository: name, accept: "application/json", sink: sink) {
            case .failure(let e): return .failure(e)
            case .success(let head):
                guard head.status == 200 else { return .failure(UpstreamError.from(status: head.status, headers: head.headers)) }
                let obj = try? JSONSerialization.jsonObject(with: Data(sink.body)) as? [String: Any]
                return .success(obj?["tags"] as? [String] ?? [])
            }
        }
    }

    // MARK: manifests and blobs

    /// Fills an item's manifests and blobs (through index children for the chosen platforms).
    func plan(_ item: SyncItem) -> SyncItem {
        var it = item
        switch it.target {
        case .chart(let repo, let file):
            planChart(&it, repo, file)
        case .image(let up, let name, let ref):
            switch retryingOutages({ manifest(up, name, ref) }) {
            case .failure(let e):
                it.error = "manifest: \(e)"
            case .success(let m):
                it.manifests.append(m.digest)
                let obj = (try? JSONSerialization.jsonObject(with: Data(m.body))) as? [String: Any] ?? [:]
                guard let children = obj["manifests"] as? [[String: Any]] else {
                    addBlobs(&it, m.body, up, name)
                    return it
                }
                for child in children where platformWanted(child["platform"] as? [String: Any]) {
                    guard let d = (child["digest"] as? String).flatMap(Digest.init) else { continue }
                    switch retryingOutages({ manifest(up, name, .digest(d)) }) {
                    case .failure(let e): it.error = "manifest \(d): \(e)"
                    case .success(let child):
                        it.manifests.append(child.digest)
                        addBlobs(&it, child.body, up, name)
                    }
                }
            }
        }
        return it
    }

    private func platformWanted(_ p: [String: Any]?) -> Bool {
        guard let wanted = config.sync.platforms else { return true }
        guard let p, let os = p["os"] as? String, let arch = p["architecture"] as? String else { return false }
        let variant = p["variant"] as? String
        return wanted.contains { w in
            let f = w.split(separator: "/").map(String.init)
            return f[0] == os && f[1] == arch && (f.count < 3 || f[2] == variant)
        }
    }

    private func addBlobs(_ it: inout SyncItem, _ body: [UInt8], _ up: RegistryUpstream, _ name: RepositoryName) {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            it.error = "manifest is not JSON"
            return
        }
        var descriptors = (obj["layers"] as? [[String: Any]]) ?? []
        if let c = obj["config"] as? [String: Any] { descriptors.append(c) }
        for desc in descriptors {
            guard let d = (desc["digest"] as? String).flatMap(Digest.init) else { continue }
            let size = (desc["size"] as? Int).map(Int64.init) ?? 0
            let path = "\(name.value)/blobs/\(d)"
            it.blobs.append(SyncItem.Blob(digest: d, size: size) { fetch in up.request("GET", path: path, repository: name, accept: nil, sink: fetch) })
        }
    }

    /// A verified manifest: from the cache for digests (and unchanged tags,
    /// checked with one HEAD, which Docker Hub does not count as a pull),
    /// else fetched through `ManifestService` and kept unless this is a dry run.
    private func manifest(_ up: RegistryUpstream, _ name: RepositoryName, _ ref: Reference) -> Result<VerifiedManifest, UpstreamError> {
        let store = mirror.store
        let tags = mirror.tagIndex
        let limit = ManifestService.maxManifestBytes
        if case .digest(let d) = ref, let b = store.readAll(d, limit: limit) {
            return .success(VerifiedManifest(digest: d, body: b, mediaType: store.mediaType(d) ?? ManifestService.mediaType(nil, b)))
        }
        if case .tag(let t) = ref, let rec = tags.get(upstream: up.name, name: name, tag: t), let b = store.readAll(rec.digest, limit: limit) {
            let sink = CollectingSink(limit: 0)
            if case .success(let head) = up.request("HEAD", path: "\(name.value)/manifests/\(t)", repository: name, accept: ManifestService.defaultAccept, sink: sink),
               head.status == 200, head.headers["Docker-Content-Digest"].flatMap(Digest.init) == rec.digest {
                if !dryRun {
                    tags.put(upstream: up.name, name: name, tag: t, record: TagRecord(digest: rec.digest, mediaType: rec.mediaType, checkedAt: CacheIndex.nowMillis()))
                }
                return .success(VerifiedManifest(digest: rec.digest, body: b, mediaType: rec.mediaType))
            }
        }
        let expected: Digest? = if case .digest(let d) = ref { d } else { nil }
        let tag: Tag? = if case .tag(let t) = ref { t } else { nil }
        let outcome = mirror.manifests.fetchVerified(up, name, ref, expected: expected).result
        if !dryRun, case .success(let m) = outcome { mirror.manifests.keep(m, up, name, tag: tag) }
        return outcome
    }

    private func planChart(_ it: inout SyncItem, _ repo: ChartRepository, _ file: String) {
        let (snap, err) = repo.currentIndex()
        guard let entry = snap?.files[file] else {
            it.error = "not in index: \(err ?? file)"
            return
        }
        guard let d = entry.digest else {
            it.error = "the index gives no digest for \(file): not synced unverified"
            return
        }
        let headers = repo.headers(for: entry.url)
        // Archive size is unknown before the fetch; a HEAD gives it for dry runs and the budget.
        var size: Int64 = 0
        if !mirror.store.contains(d) {
            let sink = CollectingSink(limit: 0)
            if case .success(let h) = repo.client.perform(method: "HEAD", url: entry.url, headers: headers, options: repo.options, sink: sink),
               let n = h.headers["Content-Length"].flatMap({ Int64($0) }) { size = n }
        }
        it.blobs.append(SyncItem.Blob(digest: d, size: size) { fetch in
            repo.client.perform(method: "GET", url: entry.url, headers: headers, options: repo.options, sink: fetch)
        })
    }
}

/// Runs `body` again on outage-class failures: 3 attempts, 0.5 s then 1 s apart.
func retryingOutages<T>(_ body: () -> Result<T, UpstreamError>) -> Result<T, UpstreamError> {
    var delay: useconds_t = 500_000
    var last = body()
    for _ in 0..<2 {
        guard case .failure(let e) = last, e.isOutage, e != .circuitOpen else { return last }
        usleep(delay)
        delay *= 2
        last = body()
    }
    return last
}
