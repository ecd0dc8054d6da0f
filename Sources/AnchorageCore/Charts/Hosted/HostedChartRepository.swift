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
final class HostedChartRepository: Sendable {
    let config: HostedChartsConfig
    let layout: HostedLayout
    let pool: WorkerPool

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
    }
    private let state = Mutex(State())
    private let writes = NSLock()

    var name: String { config.name }

    init(config: HostedChartsConfig, layout: HostedLayout, pool: WorkerPool) {
        self.config = config
        self.layout = layout
        self.pool = pool
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
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let name = obj["name"] as? String, let version = obj["version"] as? String,
              let digest = (obj["digest"] as? String).flatMap({ Digest("sha256:\($0)") }) else { return nil }
        return Version(name: name, version: version, digest: digest, json: Array(data), yaml: IndexEntryWriter.entry(obj))
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
        if !force, version(package.name, package.version) != nil { return .failure(.exists) }
        guard var fields = IndexEntryWriter.fields(package.metadata) as? [String: Any] else { return .failure(.storage("Chart.yaml is not a mapping")) }
        fields["digest"] = package.digest.hex
        fields["created"] = HostedChartRepository.timestamp()
        fields["urls"] = ["\(package.name)-\(package.version).tgz"]
        guard let json = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else {
            return .failure(.storage("cannot encode the index entry"))
        }
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

    /// Stores a provenance file for a version that exists.
    func saveProvenance(_ chart: String, _ version: String, _ bytes: [UInt8]) -> Bool {
        writes.lock()
        defer { writes.unlock() }
        guard self.version(chart, version) != nil else { return false }
        return writeFileAtomically("\(layout.chartVersion(config.name, chart, version))/chart.tgz.prov", bytes)
    }

    func provenance(_ v: Version) -> [UInt8]? {
        FileManager.default.contents(atPath: archivePath(v) + ".prov").map { Array($0) }
    }

    /// Removes a version with its archive and provenance; false when absent.
    func delete(_ chart: String, _ version: String) -> Bool {
        writes.lock()
        defer { writes.unlock() }
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

    private func changed(_ body: (inout State) -> Void) {
        state.withLock { s in
            body(&s)
            s.index = nil
            s.generation += 1
        }
    }
}
