import Foundation
import Synchronization

/// One `[charts "NAME"]` repository: its index, kept fresh behind one
/// upstream request however many clients ask.
///
/// - fresh (within `index_ttl`): served from memory;
/// - stale: served at once while one background refresh runs
///   (stale-while-revalidate);
/// - refresh failed (upstream down, timeout, body that does not parse):
///   the previous good index stays (stale-if-error), retried 10 s later;
/// - nothing yet: the request waits for the first fetch.
/// The last good upstream text is kept on disk so a restart serves it too.
final class ChartRepository: Sendable {
    /// What a client is served, built once per upstream change.
    struct Snapshot: Sendable {
        let body: [UInt8]
        let gzip: [UInt8]?
        let etag: String
        let contentType: String
        let fetchedAt: UInt64
        let files: [String: ChartFile]
        let entryCount: Int
        /// chart → versions, for sync rules.
        let versions: [String: [ChartVersionEntry]]
    }

    struct ChartFile: Sendable {
        let url: String        // absolute
        let digest: Digest?
    }

    private struct State {
        var snapshot: Snapshot?
        var refreshing = false
        var waiters: [@Sendable (Snapshot?, String?) -> Void] = []
    }

    let config: ChartsConfig
    let client: CurlClient
    let options: TransferOptions
    let layout: CacheLayout
    let pool: WorkerPool
    let counters: Counters
    private let state = Mutex(State())
    /// Archives without a digest in the index: file → digest computed on first fetch.
    let computedDigests = Mutex<[String: Digest]>([:])

    /// A provenance file kept from an earlier fetch (`NAME-VERSION.tgz`, validated).
    func storedProvenance(_ file: String) -> [UInt8]? {
        FileManager.default.contents(atPath: layout.chartProvenance(repository: name, file: file)).map { [UInt8]($0) }
    }

    func storeProvenance(_ file: String, _ bytes: [UInt8]) {
        _ = writeFileAtomically(layout.chartProvenance(repository: name, file: file), bytes)
    }

    init(config: ChartsConfig, client: CurlClient, options: TransferOptions, layout: CacheLayout, pool: WorkerPool, counters: Counters) {
        self.counters = counters
        self.config = config
        self.client = client
        self.options = options
        self.layout = layout
        self.pool = pool
        if let data = FileManager.default.contents(atPath: layout.chartIndex(repository: config.name)),
           let text = String(data: data, encoding: .utf8),
           let snap = try? build(text, fetchedAt: 0) {
            state.withLock { $0.snapshot = snap }
            Log.info("chart index loaded from cache", ["repository": config.name, "entries": "\(snap.entryCount)"])
        }
    }

    var name: String { config.name }

    /// The current snapshot without triggering a refresh (status views).
    var cachedSnapshot: Snapshot? { state.withLock { $0.snapshot } }
    var entryCount: Int? { cachedSnapshot?.entryCount }

    /// Headers for requests to `url`: credentials only for the repository's own host.
    func headers(for url: String) -> [String] {
        guard let u = config.username, let p = config.password, ChartRepository.host(url) == ChartRepository.host(config.url) else { return [] }
        return ["Authorization: Basic " + Data("\(u):\(p)".utf8).base64EncodedString()]
    }

    static func host(_ url: String) -> String? {
        guard let r = url.range(of: "://") else { return nil }
        let rest = url[r.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return String(authority.split(separator: "@").last ?? authority).lowercased()
    }

    /// Calls back with the current index (fresh or stale), or waits for the
    /// first one; the string is an error when there is none.
    func withIndex(_ cb: @escaping @Sendable (Snapshot?, String?) -> Void) {
        let now = monotonicMillis()
        let ttl = UInt64(config.indexTTL.milliseconds)
        var start = false
        let current: Snapshot? = state.withLock { s in
            if let snap = s.snapshot {
                if now &- snap.fetchedAt >= ttl || snap.fetchedAt == 0, !s.refreshing {
                    s.refreshing = true
                    start = true
                }
                return snap
            }
            s.waiters.append(cb)
            if !s.refreshing {
                s.refreshing = true
                start = true
            }
            return nil
        }
        if start { pool.submit(key: "charts/\(name)") { [self] in refresh() } }
        if let current { cb(current, nil) }
    }

    /// The index for a synchronous caller (sync), waiting for it if needed.
    func currentIndex() -> (Snapshot?, String?) {
        let box = Mutex<(Snapshot?, String?)>((nil, "no answer"))
        let done = DispatchSemaphore(value: 0)
        withIndex { snap, err in
            box.withLock { $0 = (snap, err) }
            done.signal()
        }
        done.wait()
        return box.withLock { $0 }
    }

    /// One upstream fetch of index.yaml; never replaces a good index with a bad one.
    private func refresh() {
        let url = "\(config.url)/index.yaml"
        let sink = CollectingSink(limit: 256 << 20)
        let result = client.perform(method: "GET", url: url, headers: headers(for: url), options: options, sink: sink)
        var failure: String?
        var fresh: Snapshot?
        switch result {
        case .failure(let e): counters.recordUpstream("charts/\(config.name)", e.kind)
        case .success(let h): counters.recordUpstream("charts/\(config.name)", h.status < 400 ? "ok" : UpstreamError.from(status: h.status, headers: h.headers).kind)
        }
        switch result {
        case .failure(let e):
            failure = e.description
        case .success(let head):
            if head.status != 200 {
                failure = UpstreamError.from(status: head.status, headers: head.headers).description
            } else if sink.overflowed {
                failure = "index larger than 256 MiB"
            } else if let text = String(bytes: sink.body, encoding: .utf8) {
                do {
                    fresh = try build(text, fetchedAt: monotonicMillis())
                    _ = writeFileAtomically(layout.chartIndex(repository: config.name), sink.body)
                } catch {
                    failure = "upstream index does not parse: \(error)"
                }
            } else {
                failure = "upstream index is not UTF-8"
            }
        }
        let (waiters, snap): ([@Sendable (Snapshot?, String?) -> Void], Snapshot?) = state.withLock { s in
            s.refreshing = false
            if let fresh {
                s.snapshot = fresh
            } else if let old = s.snapshot {
                // Keep serving the old index; try again in 10 s, not on every request.
                let retry = monotonicMillis() &- UInt64(config.indexTTL.milliseconds) &+ 10_000
                s.snapshot = Snapshot(body: old.body, gzip: old.gzip, etag: old.etag, contentType: old.contentType,
                                      fetchedAt: min(retry, monotonicMillis()), files: old.files, entryCount: old.entryCount, versions: old.versions)
            }
            defer { s.waiters = [] }
            return (s.waiters, s.snapshot)
        }
        if let failure {
            Log.error("chart index refresh failed; keeping the previous copy", ["repository": config.name, "error": failure, "have_copy": "\(snap != nil)"])
        } else if let fresh {
            Log.info("chart index refreshed", ["repository": config.name, "entries": "\(fresh.entryCount)", "bytes": "\(fresh.body.count)"])
        }
        for w in waiters { w(snap, snap == nil ? (failure ?? "no index") : nil) }
    }

    /// Parses and rewrites an upstream index into what clients get.
    func build(_ text: String, fetchedAt: UInt64) throws -> Snapshot {
        let index = try ChartIndex.parse(text)
        for s in index.skipped.prefix(5) { Log.warn("chart index entry skipped", ["repository": config.name, "why": s]) }
        let (rewritten, kept) = IndexRewriter.rewrite(index, keepVersions: config.keepVersions)
        var files: [String: ChartFile] = [:]
        var versions: [String: [ChartVersionEntry]] = [:]
        for e in kept where files[e.fileName] == nil {
            guard let url = e.urls.first.flatMap({ resolve($0) }) else { continue }
            files[e.fileName] = ChartFile(url: url, digest: e.digest)
            versions[e.name, default: []].append(e)
        }
        let body = Array(rewritten.utf8)
        let etag = "\"" + Hasher.digest(body).hex.prefix(32) + "\""
        return Snapshot(body: body, gzip: Gzip.compress(body), etag: etag,
                        contentType: index.format == .json ? "application/json" : "application/x-yaml",
                        fetchedAt: fetchedAt, files: files, entryCount: kept.count, versions: versions)
    }

    /// An index URL made absolute against the repository URL.
    func resolve(_ raw: String) -> String? {
        let u = raw.trimmed(" ")
        if u.hasPrefix("http://") || u.hasPrefix("https://") || u.hasPrefix("oci://") { return u }
        if u.contains("://") { return nil }   // file://, ftp://: never fetched
        if u.hasPrefix("/") {
            guard let r = config.url.range(of: "://") else { return nil }
            let authorityEnd = config.url[r.upperBound...].firstIndex(of: "/") ?? config.url.endIndex
            return String(config.url[..<authorityEnd]) + u
        }
        var rel = Substring(u)
        while rel.hasPrefix("./") { rel = rel.dropFirst(2) }
        return "\(config.url)/\(rel)"
    }
}
