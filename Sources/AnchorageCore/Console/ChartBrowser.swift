import Foundation

/// The console's view of chart repositories, mirrored and hosted: charts,
/// versions, and a version's Chart.yaml, values.yaml and README read from
/// its archive (streamed through `TarScanner`; each file capped).
struct ChartBrowser {
    let mirror: Mirror

    static let maxShownFile = 256 << 10
    static let shownFiles = ["Chart.yaml", "values.yaml", "README.md"]

    func repositories() -> [[String: Any]] {
        var out: [[String: Any]] = []
        for r in mirror.charts.repositories.values.sorted(by: { $0.name < $1.name }) {
            let versions = r.cachedSnapshot?.versions ?? [:]
            out.append(["name": r.name, "kind": "cached", "url": r.config.url,
                        "charts": versions.keys.sorted().map { chart -> [String: Any] in
                            ["name": chart, "versions": newestFirst(versions[chart] ?? []).map { e -> [String: Any] in
                                ["version": e.version, "app_version": e.appVersion ?? NSNull(), "created": e.created ?? NSNull(),
                                 "digest": e.digest?.description ?? NSNull(), "cached": e.digest.map(mirror.store.contains) ?? false]
                            }]
                        }])
        }
        for r in mirror.charts.hosted.values.map(\.repository).sorted(by: { $0.name < $1.name }) {
            _ = r.refresh()
            out.append(["name": r.name, "kind": "hosted", "url": NSNull(),
                        "charts": r.chartNames().map { chart -> [String: Any] in
                            ["name": chart, "versions": HostedChartRepository.newestFirst(r.versions(chart) ?? []).map { v -> [String: Any] in
                                let fields = (try? JSONSerialization.jsonObject(with: Data(v.json))) as? [String: Any] ?? [:]
                                return ["version": v.version, "app_version": fields["appVersion"] as? String ?? NSNull(),
                                        "created": fields["created"] as? String ?? NSNull(), "digest": v.digest.description, "cached": true]
                            }]
                        }])
        }
        return out
    }

    private func newestFirst(_ entries: [ChartVersionEntry]) -> [ChartVersionEntry] {
        entries.sorted { SemanticVersion.precedes($1.version, $0.version) }
    }

    enum Lookup { case found([String: Any]), unknown(String), notCached }

    /// A version's files, from the archive on disk (a mirrored version that
    /// was never pulled is not fetched for this).
    func files(repository: String, chart: String, version: String) -> Lookup {
        let archive: [UInt8]?
        if let hosted = mirror.charts.hosted[repository]?.repository {
            _ = hosted.refresh()
            guard let v = hosted.version(chart, version) else { return .unknown("no version \(version) of \(chart) in \(repository)") }
            archive = hosted.openArchive(v)?.readAll(limit: ChartPackage.maxArchiveBytes)
        } else if let repo = mirror.charts.repositories[repository] {
            guard let e = repo.cachedSnapshot?.versions[chart]?.first(where: { $0.version == version }) else {
                return .unknown("no version \(version) of \(chart) in \(repository)")
            }
            archive = e.digest.flatMap { mirror.store.readAll($0, limit: ChartPackage.maxArchiveBytes) }
        } else {
            return .unknown("no chart repository \(repository)")
        }
        guard let archive else { return .notCached }
        var out: [String: Any] = ["repository": repository, "chart": chart, "version": version]
        for file in ChartBrowser.shownFiles {
            out[file] = ChartBrowser.read(file, in: archive)
        }
        return .found(out)
    }

    /// One file at the top of the chart directory: its text, or why not.
    static func read(_ file: String, in archive: [UInt8]) -> [String: Any] {
        var tar = TarScanner(limit: maxShownFile) { path in
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            return parts.count == 2 && parts[1] == file
        }
        _ = Gzip.decompress(archive, limit: ChartPackage.maxUnpackedBytes) { tar.feed($0) }
        if let bytes = tar.found {
            guard let text = String(bytes: bytes, encoding: .utf8) else { return ["error": "not UTF-8 text"] }
            return ["text": text]
        }
        return ["error": tar.failure.map { $0.contains("larger than") ? "larger than \(maxShownFile >> 10) KiB: not shown" : $0 } ?? "not in the chart"]
    }
}
