import Foundation
import Glibc
import Synchronization

/// `anchorage sync` and the in-daemon schedule: make what `[sync]` names
/// local, with the same verification as a pull, and pin it.
///
/// Phase A (`SyncPlanner`) resolves every rule (tags/list, index.yaml) and
/// fetches the manifests (small; a cached tag costs one HEAD). That yields the exact set
/// of blobs, so a dry run can report bytes without touching the cache, and a
/// pinned set larger than `max_size` is refused before anything is fetched.
/// Phase B fetches the missing blobs, each once, `concurrency` at a time,
/// through the same single-flight fetch the daemon uses (so a sync inside
/// the daemon shares transfers with concurrent pulls). Transient upstream
/// errors are retried with back-off; one failing item never stops the others.
public final class SyncEngine: @unchecked Sendable {
    public struct Options: Sendable {
        public var dryRun = false
        public var only: String?
        public init() {}
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
            makeParentDirectory(mirror.layout.syncLock)
            lockFD = open(mirror.layout.syncLock, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if lockFD < 0 || flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
                report.fatal = "another sync is running on this cache (\(mirror.layout.syncLock))"
                if lockFD >= 0 { close(lockFD) }
                return report
            }
        }
        defer { if lockFD >= 0 { close(lockFD) } }
        if !mirror.index.isScanned { mirror.index.scanNow() }

        // Phase A: rules → items with their manifests and blob lists.
        let planner = SyncPlanner(mirror: mirror, dryRun: options.dryRun)
        var items: [SyncItem] = []
        for rule in rules {
            switch planner.resolve(rule) {
            case .failure(let e): report.failedRules.append((rule.text, e.message))
            case .success(let list): items += list
            }
        }
        items = runConcurrently(items) { planner.plan($0) }
        // Unique blobs, and what the pinned set will weigh.
        var unique: [Digest: SyncItem.Blob] = [:]
        for it in items where it.error == nil {
            for b in it.blobs where unique[b.digest] == nil { unique[b.digest] = b }
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
            let r = retryingOutages { self.mirror.blobs.fetchNow(d, source: "sync", fetch: m.fetch) }
            results.withLock { $0[d] = r }
            if case .success(let n) = r { self.progress.bytes(n) }
            return d
        }
        let done = results.withLock { $0 }
        let publisher = HostedPublisher(cache: mirror.store, hosted: mirror.hostedStore)
        for i in items.indices where items[i].error == nil {
            for b in items[i].blobs {
                switch done[b.digest] {
                case .failure(let e)?: items[i].error = items[i].error ?? "\(b.digest): \(e)"
                case .success(let n)?: items[i].fetchedBytes += n
                case nil: break
                }
            }
            if items[i].error == nil { items[i].error = publisher.publish(items[i]) }
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

    private func finish(_ r: Report, _ items: [SyncItem], _ t0: Date) -> Report {
        var report = r
        if report.items.isEmpty {
            report.items = items.map { ($0.label, $0.error == nil && report.fatal == nil, $0.fetchedBytes, $0.error ?? report.fatal) }
        }
        report.seconds = Date().timeIntervalSince(t0)
        progress.end(report)
        return report
    }

    // MARK: helpers

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
