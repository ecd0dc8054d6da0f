import Foundation
import Glibc
import Synchronization

/// `anchorage sync` and the in-daemon schedule: make what `[sync]` names
/// local, with the same verification as a pull, and pin it.
///
/// Phase A resolves every rule (tags/list, index.yaml) and fetches the
/// manifests (small; a cached tag costs one HEAD). That yields the exact set
/// of blobs, so a dry run can report bytes without touching the cache, and a
/// pinned set larger than `max_size` is refused before anything is fetched.
/// Phase B fetches the missing blobs, each once, `concurrency` at a time,
/// through the same single-flight ingest the daemon uses (so a sync inside
/// the daemon shares transfers with concurrent pulls). Transient upstream
/// errors are retried with back-off; one failing item never stops the others.
public final class SyncEngine: @unchecked Sendable {
    public struct Options: Sendable {
        public var dryRun = false
        public var only: String?
        public init() {}
    }

    /// One resolved thing to make local (an image reference or a chart file).
    struct Item {
        let label: String
        let ruleKey: String
        var blobs: [(digest: Digest, size: Int64, fetch: @Sendable (Ingest) -> Result<ResponseHead, UpstreamError>)] = []
        var manifests: [Digest] = []
        var error: String?
        var fetchedBytes: Int64 = 0
    }

    public struct Report: Sendable {
        public var items: [(label: String, ok: Bool, bytes: Int64, error: String?)] = []
        public var bytesToFetch: Int64 = 0
        public var bytesFetched: Int64 = 0
        public var failedRules: [(rule: String, error: String)] = []
        public var seconds: Double = 0
        public var fatal: String?
        public var ok: Bool { fatal == nil && failedRules.isEmpty && items.allSatisfy(\.ok) }
        public var failures: Int { failedRules.count + items.filter { !$0.ok }.count }
    }

    let mirror: Mirror
    let config: Config
    let options: Options
    let progress: SyncProgress

    init(mirror: Mirror, options: Options, progress: SyncProgress) {
        self.mirror = mirror
        self.config = mirror.config
        self.options = options
        self.progress = progress
    }

    var rules: [SyncConfig.Rule] {
        config.sync.rules.filter { r in options.only.map { r.text.contains($0) } ?? true }
    }

    public func run() -> Report {
        let t0 = Date()
        var report = Report()
        // Never two runs at once, across processes: an exclusive lock file.
        var lockFD: Int32 = -1
        if !options.dryRun {
            makeParentDirectory("\(mirror.layout.root)/sync.lock")
            lockFD = open("\(mirror.layout.root)/sync.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if lockFD < 0 || flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
                report.fatal = "another sync is running on this cache (\(mirror.layout.root)/sync.lock)"
                if lockFD >= 0 { close(lockFD) }
                return report
            }
        }
        defer { if lockFD >= 0 { close(lockFD) } }
        if !mirror.index.isScanned { mirror.index.scanNow() }

        // Phase A: rules → items with their manifests and blob lists.
        var items: [Item] = []
        for rule in rules {
            switch resolve(rule) {
            case .failure(let e): report.failedRules.append((rule.text, e.message))
            case .success(let list): items += list
            }
        }
        items = runConcurrently(items) { self.fetchManifests($0) }
        // Unique blobs, and what the pinned set will weigh.
        var unique: [Digest: (size: Int64, fetch: @Sendable (Ingest) -> Result<ResponseHead, UpstreamError>)] = [:]
        for it in items where it.error == nil {
            for b in it.blobs where unique[b.digest] == nil { unique[b.digest] = (b.size, b.fetch) }
        }
        let missing = unique.filter { !mirror.store.contains($0.key) }
        report.bytesToFetch = missing.values.reduce(0) { $0 + $1.size }
        let pinnedTotal = unique.values.reduce(0) { $0 + $1.size }
        if config.sync.pin && pinnedTotal > config.cache.maxSize.bytes {
            report.fatal = "the pinned set (\(ByteSize(pinnedTotal))) is larger than [cache] max_size (\(config.cache.maxSize)); raise max_size or narrow the rules"
            return finish(report, items, t0)
        }
        if options.dryRun {
            for it in items {
                let need = it.blobs.filter { missing[$0.digest] != nil }.reduce(0) { $0 + $1.size }
                report.items.append((it.label, it.error == nil, need, it.error))
                progress.item(it.label, ok: it.error == nil, bytes: need, error: it.error, dryRun: true)
            }
            report.seconds = Date().timeIntervalSince(t0)
            return report
        }

        // Phase B: every missing blob once.
        progress.begin(total: items.count, bytes: report.bytesToFetch)
        let results = Mutex<[Digest: Result<Int64, UpstreamError>]>([:])
        let order = Array(missing.keys)
        _ = runConcurrently(order) { d -> Digest in
            guard let m = missing[d] else { return d }
            let r = self.withRetries { self.mirror.blobs.fetchNow(d, source: "sync", fetch: m.fetch) }
            results.withLock { $0[d] = r }
            if case .success(let n) = r { self.progress.bytes(n) }
            return d
        }
        let done = results.withLock { $0 }
        for i in items.indices where items[i].error == nil {
            for b in items[i].blobs {
                switch done[b.digest] {
                case .failure(let e)?: items[i].error = items[i].error ?? "\(b.digest): \(e)"
                case .success(let n)?: items[i].fetchedBytes += n
                case nil: break
                }
            }
            progress.item(items[i].label, ok: items[i].error == nil, bytes: items[i].fetchedBytes, error: items[i].error, dryRun: false)
        }
        report.bytesFetched = done.values.reduce(0) { if case .success(let n) = $1 { return $0 + n } else { return $0 } }

        if config.sync.pin {
            var byRule: [String: (text: String, digests: Set<Digest>)] = [:]
            for r in rules { byRule[PinSet.key(forRule: r.text)] = (r.text, []) }
            for it in items where it.error == nil {
                byRule[it.ruleKey]?.digests.formUnion(it.blobs.map(\.digest) + it.manifests)
            }
            for (key, v) in byRule { PinSet.write(mirror.layout, key: key, rule: v.text, digests: v.digests) }
            if options.only == nil {
                // Rules removed from the config: their content is no longer pinned.
                let removed = PinSet.prune(mirror.layout, keep: Set(byRule.keys))
                if removed > 0 { Log.info("sync: unpinned removed rules", ["rules": "\(removed)"]) }
            }
            mirror.index.refreshPins()
        }
        return finish(report, items, t0)
    }

    private func finish(_ r: Report, _ items: [Item], _ t0: Date) -> Report {
        var report = r
        if report.items.isEmpty {
            report.items = items.map { ($0.label, $0.error == nil && report.fatal == nil, $0.fetchedBytes, $0.error ?? report.fatal) }
        }
        report.seconds = Date().timeIntervalSince(t0)
        progress.end(report)
        return report
    }

    // MARK: resolution

    private func resolve(_ rule: SyncConfig.Rule) -> Result<[Item], RuleError> {
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
            return .success(refs.map { Item(label: "\(registry)/\(name.value)\($0.isDigest ? "@" : ":")\($0)", ruleKey: key) })
        case .chart(let repoName, let chart, let range):
            guard let repo = mirror.charts.repositories[repoName] else { return .failure(RuleError("no [charts \"\(repoName)\"]")) }
            let (snap, err) = repo.currentIndex()
            guard let snap else { return .failure(RuleError("index.yaml: \(err ?? "unavailable")")) }
            var versions = (snap.versions[chart] ?? []).filter { range?.contains($0) ?? true }
            versions.sort { SemanticVersion.precedes($1, $0) }
            if let k = config.sync.keepLatest { versions = Array(versions.prefix(k)) }
            if versions.isEmpty { return .failure(RuleError("no version of \(chart) matches")) }
            return .success(versions.map { Item(label: "charts/\(repoName)/\(chart)-\($0).tgz", ruleKey: key) })
        }
    }

    private func listTags(_ up: RegistryUpstream, _ name: RepositoryName) -> Result<[String], UpstreamError> {
        withRetries {
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

    // MARK: manifests

    /// Fills an item's manifests and blobs (through index children for the chosen platforms).
    private func fetchManifests(_ item: Item) -> Item {
        var it = item
        if it.label.hasPrefix("charts/") { return chartItem(it) }
        guard let (up, name, ref) = parseLabel(it.label) else {
            it.error = "bad item"
            return it
        }
        switch withRetries({ self.manifest(up, name, ref) }) {
        case .failure(let e):
            it.error = "manifest: \(e)"
        case .success(let (digest, body)):
            it.manifests.append(digest)
            let obj = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
            if let children = obj["manifests"] as? [[String: Any]] {
                for child in children where platformWanted(child["platform"] as? [String: Any]) {
                    guard let d = (child["digest"] as? String).flatMap(Digest.init) else { continue }
                    switch withRetries({ self.manifest(up, name, .digest(d)) }) {
                    case .failure(let e): it.error = "manifest \(d): \(e)"
                    case .success(let (cd, cbody)):
                        it.manifests.append(cd)
                        addBlobs(&it, cbody, up, name)
                    }
                }
            } else {
                addBlobs(&it, body, up, name)
            }
        }
        return it
    }

    private func parseLabel(_ label: String) -> (RegistryUpstream, RepositoryName, Reference)? {
        for (regName, up) in mirror.upstreams where label.hasPrefix(regName + "/") {
            let rest = label.dropFirst(regName.count + 1)
            if let at = rest.firstIndex(of: "@"), let n = RepositoryName(rest[..<at]), let d = Digest(rest[rest.index(after: at)...]) {
                return (up, n, .digest(d))
            }
            if let colon = rest.lastIndex(of: ":"), let n = RepositoryName(rest[..<colon]), let t = Tag(rest[rest.index(after: colon)...]) {
                return (up, n, .tag(t))
            }
        }
        return nil
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

    private func addBlobs(_ it: inout Item, _ body: [UInt8], _ up: RegistryUpstream, _ name: RepositoryName) {
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
            it.blobs.append((d, size, { ingest in up.request("GET", path: path, repository: name, accept: nil, sink: ingest) }))
        }
    }

    /// A verified manifest: from the cache for digests (and unchanged tags,
    /// checked with one HEAD), else fetched; stored unless this is a dry run.
    private func manifest(_ up: RegistryUpstream, _ name: RepositoryName, _ ref: Reference) -> Result<(Digest, [UInt8]), UpstreamError> {
        let store = mirror.store
        let tags = mirror.tagIndex
        if case .digest(let d) = ref, let b = store.readAll(d, limit: ManifestService.maxManifestBytes) { return .success((d, b)) }
        if case .tag(let t) = ref, let rec = tags.get(upstream: up.name, name: name, tag: t), let b = store.readAll(rec.digest, limit: ManifestService.maxManifestBytes) {
            let sink = CollectingSink(limit: 0)
            if case .success(let head) = up.request("HEAD", path: "\(name.value)/manifests/\(t)", repository: name, accept: ManifestService.defaultAccept, sink: sink),
               head.status == 200, head.headers["Docker-Content-Digest"].flatMap(Digest.init) == rec.digest {
                if !options.dryRun {
                    tags.put(upstream: up.name, name: name, tag: t, record: TagRecord(digest: rec.digest, mediaType: rec.mediaType, checkedAt: CacheIndex.nowMillis()))
                }
                return .success((rec.digest, b))
            }
        }
        let sink = CollectingSink(limit: ManifestService.maxManifestBytes)
        switch up.request("GET", path: "\(name.value)/manifests/\(ref)", repository: name, accept: ManifestService.defaultAccept, sink: sink) {
        case .failure(let e): return .failure(e)
        case .success(let head):
            guard head.status == 200, !sink.overflowed else { return .failure(UpstreamError.from(status: head.status, headers: head.headers)) }
            let want: Digest? = { if case .digest(let d) = ref { return d }; return head.headers["Docker-Content-Digest"].flatMap(Digest.init) }()
            let actual = Hasher.digest(sink.body, want?.algorithm ?? .sha256)
            if let want, want != actual {
                mirror.counters.recordMismatch(source: "\(up.name)/\(name.value)", expected: want.description, actual: actual.description)
                return .failure(.digestMismatch(expected: want.description, actual: actual.description))
            }
            if !options.dryRun {
                _ = store.put(sink.body, digest: actual)
                let type = ManifestService.mediaType(head.headers["Content-Type"], sink.body)
                store.setMediaType(type, for: actual)
                if case .tag(let t) = ref {
                    tags.put(upstream: up.name, name: name, tag: t, record: TagRecord(digest: actual, mediaType: type, checkedAt: CacheIndex.nowMillis()))
                }
            }
            return .success((actual, sink.body))
        }
    }

    private func chartItem(_ item: Item) -> Item {
        var it = item
        let parts = it.label.split(separator: "/")
        guard parts.count == 3, let repo = mirror.charts.repositories[String(parts[1])] else {
            it.error = "bad chart item"
            return it
        }
        let file = String(parts[2])
        let (snap, err) = repo.currentIndex()
        guard let entry = snap?.files[file] else {
            it.error = "not in index: \(err ?? file)"
            return it
        }
        guard let d = entry.digest else {
            it.error = "the index gives no digest for \(file): not synced unverified"
            return it
        }
        let headers = repo.headers(for: entry.url)
        // Archive size is unknown before the fetch; a HEAD gives it for dry runs and the budget.
        var size: Int64 = 0
        if !mirror.store.contains(d) {
            let sink = CollectingSink(limit: 0)
            if case .success(let h) = repo.client.perform(method: "HEAD", url: entry.url, headers: headers, options: repo.options, sink: sink),
               let n = h.headers["Content-Length"].flatMap({ Int64($0) }) { size = n }
        }
        it.blobs.append((d, size, { ingest in repo.client.perform(method: "GET", url: entry.url, headers: headers, options: repo.options, sink: ingest) }))
        return it
    }

    // MARK: helpers

    /// Retries outage-class failures: 3 attempts, 0.5 s then 1 s apart.
    private func withRetries<T>(_ body: () -> Result<T, UpstreamError>) -> Result<T, UpstreamError> {
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

    /// Maps `work` over `input` on `concurrency` threads; order is kept.
    private func runConcurrently<T, U>(_ input: [T], _ work: @escaping (T) -> U) -> [U] {
        guard !input.isEmpty else { return [] }
        let out = Mutex<[Int: U]>([:])
        let next = Atomic<Int>(0)
        let box = UncheckedBox((input, work))
        DispatchQueue.concurrentPerform(iterations: min(config.sync.concurrency, input.count)) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                guard i < box.value.0.count else { return }
                let r = box.value.1(box.value.0[i])
                let boxed = UncheckedBox(r)
                out.withLock { $0[i] = boxed.value }
            }
        }
        let o = out.withLock { $0 }
        return (0..<input.count).compactMap { o[$0] }
    }
}

/// Carries a non-Sendable value into a closure the caller knows runs while it waits.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

extension Reference {
    var isDigest: Bool { if case .digest = self { return true } else { return false } }
}
