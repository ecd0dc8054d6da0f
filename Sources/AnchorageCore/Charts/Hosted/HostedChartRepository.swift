import Foundation
import Glibc
import Synchronization

/// A `[charts "NAME"]` repository with `hosted = true`: charts uploaded
/// through ChartMuseum's API (what `helm cm-push` and CI scripts call),
/// served to Helm at `/charts/NAME/` like a mirrored repository.
///
/// Each version is a directory (`HostedLayout.chartVersion`) holding the
/// archive, its provenance and its index entry; the whole index lives in
/// memory, each entry's YAML written once, so `index.yaml` after a change is
/// one concatenation, never a rescan. Changes are serialised per repository.
/// With an object store the repository lives in the bucket instead
/// (`SharedChartIndex`): `refresh` brings the memory up to date with it
/// before each request, and packages are copied to the local disk (by
/// digest, verified) on first download.
final class HostedChartRepository: Sendable {
    let config: HostedChartsConfig
    let layout: HostedLayout
    let pool: WorkerPool
    let shared: SharedChartIndex?

    struct Version: Sendable {
        let name: String
        let version: String
        let digest: Digest
        /// The entry as ChartMuseum's API returns it (JSON).
        let json: [UInt8]
        /// The entry as a sequence item of `index.yaml`.
        let yaml: String
    }

    private struct State {
        var charts: [String: [String: Version]] = [:]
        /// `index.yaml` as last rendered; nil after a change.
        var index: (body: [UInt8], gzip: [UInt8]?, etag: String)?
        var generation = 0
        /// The ETag of the bucket's index the memory reflects.
        var bucketVersion: String?
    }
    private let state = Mutex(State())
    private let writes = NSLock()

    var name: String { config.name }

    init(config: HostedChartsConfig, layout: HostedLayout, pool: WorkerPool, shared: ObjectStoreTier? = nil) {
        self.config = config
        self.layout = layout
        self.pool = pool
        self.shared = shared.map { SharedChartIndex(store: $0, repository: config.name) }
        guard self.shared == nil else { return }
        var charts: [String: [String: Version]] = [:]
        let root = layout.chartRepository(config.name)
        for chart in listDirectory(root) where ChartIndex.isSafeComponent(chart) {
            for version in listDirectory("\(root)/\(chart)") where ChartIndex.isSafeComponent(version) {
                if let v = HostedChartRepository.load("\(root)/\(chart)/\(version)/entry.json") { charts[chart, default: [:]][version] = v }
            }
        }
        state.withLock { $0.charts = charts }
    }

    private static func load(_ path: String) -> Version? {
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return version(obj, json: Array(data))
    }

    private static func version(_ obj: [String: Any], json: [UInt8]? = nil) -> Version? {
        guard let name = obj["name"] as? String, let version = obj["version"] as? String,
              ChartIndex.isSafeComponent(name), ChartIndex.isSafeComponent(version),
              let digest = (obj["digest"] as? String).flatMap({ Digest("sha256:\($0)") }),
              let bytes = json ?? (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])).map(Array.init) else { return nil }
        return Version(name: name, version: version, digest: digest, json: bytes, yaml: IndexEntryWriter.entry(obj))
    }

    /// With an object store: makes the memory match the bucket's index (a
    /// 304 when nothing changed). Why the store could not be asked, or nil.
    func refresh() -> String? {
        guard let shared else { return nil }
        let known = state.withLock { $0.bucketVersion }
        switch shared.fetch(known: known) {
        case .failure(let e): return e.reason
        case .success(.unchanged): return nil
        case .success(.changed(let entries, let etag)):
            adopt(entries, etag: etag)
            return nil
        }
    }

    private func adopt(_ entries: SharedChartIndex.Entries, etag: String?) {
        var charts: [String: [String: Version]] = [:]
        for (chart, versions) in entries {
            for (_, obj) in versions {
                if let v = HostedChartRepository.version(obj), v.name == chart { charts[chart, default: [:]][v.version] = v }
            }
        }
        changed { s in
            s.charts = charts
            s.bucketVersion = etag
        }
    }

    // MARK: reading

    func version(_ chart: String, _ version: String) -> Version? {
        state.withLock { $0.charts[chart]?[version] }
    }

    /// A chart's versions, newest first.
    func versions(_ chart: String) -> [Version]? {
        state.withLock { s in s.charts[chart].map { HostedChartRepository.newestFirst(Array($0.values)) } }
    }

    static func newestFirst(_ versions: [Version]) -> [Version] {
        versions.sorted { SemanticVersion.precedes($1.version, $0.version) }
    }

    func chartNames() -> [String] { state.withLock { $0.charts.keys.sorted() } }

    /// `NAME-VERSION.tgz` → the version it serves.
    func file(_ fileName: String) -> Version? {
        guard fileName.hasSuffix(".tgz") else { return nil }
        let stem = fileName.dropLast(4)
        return state.withLock { s in
            // The version starts after a "-" followed by a digit (or v).
            var i = stem.endIndex
            while let dash = stem[..<i].lastIndex(of: "-") {
                let chart = String(stem[..<dash]), version = String(stem[stem.index(after: dash)...])
                if let v = s.charts[chart]?[version] { return v }
                i = dash
            }
            return nil
        }
    }

    func archivePath(_ v: Version) -> String { "\(layout.chartVersion(config.name, v.name, v.version))/chart.tgz" }

    /// A version's package, opened; with an object store, copied from the
    /// bucket (verified against the entry's digest) on first use.
    func openArchive(_ v: Version) -> OpenFile? {
        guard let shared else { return OpenFile.openForReading(archivePath(v)) }
        let local = "\(layout.root)/charts-cache/\(config.name)/\(v.digest.hex).tgz"
        if let f = OpenFile.openForReading(local) { return f }
        guard let bytes = shared.archive(v.digest, limit: ChartMuseumAPI.maxUploadBytes) else { return nil }
        makeParentDirectory(local)
        guard writeFileAtomically(local, bytes) else { return nil }
        return OpenFile.openForReading(local)
    }

    /// `index.yaml` (and its gzip, made on first demand), rendered after
    /// each change from the entries' stored YAML.
    func index(gzip wantGzip: Bool) -> (body: [UInt8], etag: String, gzipped: Bool) {
        let current = state.withLock { s -> (body: [UInt8], gzip: [UInt8]?, etag: String, generation: Int)? in
            s.index.map { ($0.body, $0.gzip, $0.etag, s.generation) }
        }
        var rendered = current
        if rendered == nil {
            let (snapshot, generation) = state.withLock { ($0.charts, $0.generation) }
            let body = Array(render(snapshot).utf8)
            let etag = "\"\(Hasher.digest(body).hex.prefix(32))\""
            state.withLock { s in if s.generation == generation { s.index = (body, nil, etag) } }
            rendered = (body, nil, etag, generation)
        }
        guard let r = rendered else { return ([], "\"\"", false) }
        guard wantGzip else { return (r.body, r.etag, false) }
        if let gz = r.gzip { return (gz, r.etag, true) }
        guard let gz = Gzip.compress(r.body) else { return (r.body, r.etag, false) }
        state.withLock { s in if s.generation == r.generation, s.index != nil { s.index?.gzip = gz } }
        return (gz, r.etag, true)
    }

    private func render(_ charts: [String: [String: Version]]) -> String {
        var out = "apiVersion: v1\nentries:"
        if charts.isEmpty { out += " {}" }
        out += "\n"
        for chart in charts.keys.sorted() {
            out += "  \(chart):\n"
            for v in HostedChartRepository.newestFirst(Array(charts[chart]?.values ?? [:].values)) { out += v.yaml }
        }
        out += "generated: \"\(HostedChartRepository.timestamp())\"\nserverInfo:\n  contextPath: /charts/\(config.name)\n"
        return out
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(ts.tv_nsec))
    }

    // MARK: changes

    enum SaveError: Error {
        case exists
        case storage(String)
    }

    /// Stores an uploaded package (and its provenance); `force` replaces
    /// an existing version.
    func save(_ package: ChartPackage, archive: [UInt8], provenance: [UInt8]?, force: Bool) -> Result<Version, SaveError> {
        writes.lock()
        defer { writes.unlock() }
        if shared == nil, !force, version(package.name, package.version) != nil { return .failure(.exists) }
        guard var fields = IndexEntryWriter.fields(package.metadata) as? [String: Any] else { return .failure(.storage("Chart.yaml is not a mapping")) }
        fields["digest"] = package.digest.hex
        fields["created"] = HostedChartRepository.timestamp()
        fields["urls"] = ["\(package.name)-\(package.version).tgz"]
        guard let json = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else {
            return .failure(.storage("cannot encode the index entry"))
        }
        if let shared { return saveShared(shared, package, fields: fields, archive: archive, provenance: provenance, force: force) }
        let dir = layout.chartVersion(config.name, package.name, package.version)
        guard writeFileAtomically("\(dir)/chart.tgz", archive) else { return .failure(.storage("cannot write the archive: \(String(cString: strerror(errno)))")) }
        if let provenance {
            guard writeFileAtomically("\(dir)/chart.tgz.prov", provenance) else { return .failure(.storage("cannot write the provenance file")) }
        } else if force {
            unlink("\(dir)/chart.tgz.prov")
        }
        // The entry last: a version exists once its entry does.
        guard writeFileAtomically("\(dir)/entry.json", Array(json)) else { return .failure(.storage("cannot write the index entry")) }
        let v = Version(name: package.name, version: package.version, digest: package.digest, json: Array(json), yaml: IndexEntryWriter.entry(fields))
        changed { $0.charts[package.name, default: [:]][package.version] = v }
        return .success(v)
    }

    /// The package and its provenance into the bucket, then its entry into
    /// the bucket's index (a version exists once its entry does).
    private func saveShared(_ shared: SharedChartIndex, _ package: ChartPackage, fields: [String: Any], archive: [UInt8],
                            provenance: [UInt8]?, force: Bool) -> Result<Version, SaveError> {
        if !force, refresh() == nil, version(package.name, package.version) != nil { return .failure(.exists) }
        if case .failure(let e) = shared.putArchive(package.digest, archive) { return .failure(.storage("object store unavailable: \(e)")) }
        let provKey = shared.provenanceKey(package.name, package.version)
        if let provenance {
            if case .failure(let e) = shared.store.put(provKey, provenance) { return .failure(.storage("object store unavailable: \(e)")) }
        } else if force {
            shared.store.delete(provKey)
        }
        let updated = shared.update { entries in
            if !force, entries[package.name]?[package.version] != nil { return .refuse(.exists) }
            entries[package.name, default: [:]][package.version] = fields
            return .apply
        }
        switch updated {
        case .failure(let e): return .failure(e)
        case .success(let (entries, etag)):
            adopt(entries, etag: etag)
            guard let v = version(package.name, package.version) else { return .failure(.storage("the stored entry cannot be read back")) }
            return .success(v)
        }
    }

    /// Stores a provenance file for a version that exists.
    func saveProvenance(_ chart: String, _ version: String, _ bytes: [UInt8]) -> Bool {
        writes.lock()
        defer { writes.unlock() }
        guard self.version(chart, version) != nil else { return false }
        if let shared { return (try? shared.store.put(shared.provenanceKey(chart, version), bytes).get()) != nil }
        return writeFileAtomically("\(layout.chartVersion(config.name, chart, version))/chart.tgz.prov", bytes)
    }

    func provenance(_ v: Version) -> [UInt8]? {
        if let shared {
            guard case .success(let found?) = shared.store.get(shared.provenanceKey(v.name, v.version)) else { return nil }
            return found.bytes
        }
        return FileManager.default.contents(atPath: archivePath(v) + ".prov").map { Array($0) }
    }

    /// Removes a version with its archive and provenance; false when absent.
    func delete(_ chart: String, _ version: String) -> Bool {
        writes.lock()
        defer { writes.unlock() }
        if let shared { return deleteShared(shared, chart, version) }
        guard self.version(chart, version) != nil else { return false }
        let dir = layout.chartVersion(config.name, chart, version)
        // The entry first: a half-removed version is never listed.
        unlink("\(dir)/entry.json")
        unlink("\(dir)/chart.tgz.prov")
        unlink("\(dir)/chart.tgz")
        rmdir(dir)
        rmdir("\(layout.chartRepository(config.name))/\(chart)")
        changed { s in
            s.charts[chart]?[version] = nil
            if s.charts[chart]?.isEmpty == true { s.charts[chart] = nil }
        }
        return true
    }

    /// The entry out of the bucket's index first, then its files.
    private func deleteShared(_ shared: SharedChartIndex, _ chart: String, _ version: String) -> Bool {
        var removed: [String: Any]?
        let updated = shared.update { entries in
            removed = entries[chart]?.removeValue(forKey: version)
            if entries[chart]?.isEmpty == true { entries[chart] = nil }
            return removed == nil ? .refuse(.exists) : .apply
        }
        guard case .success(let (entries, etag)) = updated else { return false }
        adopt(entries, etag: etag)
        if let digest = (removed?["digest"] as? String).flatMap({ Digest("sha256:\($0)") }) { shared.store.delete(shared.archiveKey(digest)) }
        shared.store.delete(shared.provenanceKey(chart, version))
        return true
    }

    private func changed(_ body: (inout State) -> Void) {
        state.withLock { s in
            body(&s)
            s.index = nil
            s.generation += 1
        }
    }
}
