import Foundation

/// One chart version from an index: what the mirror needs to serve it.
public struct ChartVersionEntry: Sendable, Equatable {
    public let name: String
    public let version: String
    public let urls: [String]
    /// sha256 of the archive, as the index states it (`abc…` or `sha256:abc…`).
    public let digest: Digest?
    /// The file name the mirror serves it under: `NAME-VERSION.tgz`.
    public var fileName: String { "\(name)-\(version).tgz" }
    // Source location (YAML only) for in-place rewriting.
    let itemLines: Range<Int>?
    let urlsKey: (line: Int, column: Int)?
    let urlsLines: Range<Int>?
    /// Shown by the console.
    public var appVersion: String? = nil
    public var created: String? = nil

    public static func == (a: ChartVersionEntry, b: ChartVersionEntry) -> Bool {
        a.name == b.name && a.version == b.version && a.urls == b.urls && a.digest == b.digest
    }
}

/// A parsed Helm repository index (`index.yaml`, or the JSON form Helm ≥ 3.13 accepts).
public struct ChartIndex {
    public enum Format: Sendable { case yaml, json }

    public let format: Format
    public let text: String
    public let entries: [ChartVersionEntry]
    /// Entries that could not be used (bad names, no urls), with why.
    public let skipped: [String]
    let json: [String: Any]?   // the JSON form's object, for rewriting

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// Names and versions become file names: keep them to a safe alphabet.
    static func isSafeComponent(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 200 && !s.hasPrefix(".") &&
            s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 46 || $0 == 95 || $0 == 43 }
    }

    static func parseDigest(_ s: String?) -> Digest? {
        guard var d = s?.trimmed(" ") else { return nil }
        if !d.hasPrefix("sha256:") { d = "sha256:" + d }
        return Digest(d.lowercased())
    }

    public static func parse(_ text: String) throws(ParseError) -> ChartIndex {
        let trimmed = text.drop { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" || $0 == "\u{FEFF}" }
        if trimmed.hasPrefix("{") {
            return try parseJSON(text)
        }
        let root: YAMLNode
        do {
            root = try YAMLParser.parse(text)
        } catch {
            throw ParseError(message: "index is not valid YAML: \(error)")
        }
        guard root.pairs != nil else { throw ParseError(message: "index is not a mapping") }
        guard let entriesNode = root["entries"], let charts = entriesNode.pairs ?? (entriesNode.value == .null ? [] : nil) else {
            throw ParseError(message: "index has no 'entries' mapping")
        }
        var entries: [ChartVersionEntry] = []
        var skipped: [String] = []
        for chart in charts {
            guard let versions = chart.node.items ?? (chart.node.value == .null ? [] : nil) else {
                skipped.append("\(chart.key): versions are not a list")
                continue
            }
            for item in versions {
                guard item.pairs != nil else {
                    skipped.append("\(chart.key): a version entry is not a mapping")
                    continue
                }
                // Files are named after the map key (what helm indexes by);
                // an entry's own `name` may differ and is left alone.
                let name = chart.key
                guard let version = item["version"]?.string else {
                    skipped.append("\(chart.key): entry without version")
                    continue
                }
                guard isSafeComponent(name), isSafeComponent(version) else {
                    skipped.append("\(chart.key) \(version): unusable name or version")
                    continue
                }
                let urlsPair = item.pairs?.first { $0.key == "urls" }
                let urls = (urlsPair?.node.items ?? []).compactMap(\.string) + (urlsPair?.node.string.map { [$0] } ?? [])
                guard !urls.isEmpty else {
                    skipped.append("\(name) \(version): no urls")
                    continue
                }
                entries.append(ChartVersionEntry(
                    name: name, version: version, urls: urls, digest: parseDigest(item["digest"]?.string),
                    itemLines: item.firstLine..<item.endLine,
                    urlsKey: urlsPair.map { ($0.keyLine, $0.keyColumn) },
                    urlsLines: urlsPair.map { $0.keyLine..<max($0.node.endLine, $0.keyLine + 1) },
                    appVersion: item["appVersion"]?.string, created: item["created"]?.string))
            }
        }
        return ChartIndex(format: .yaml, text: text, entries: entries, skipped: skipped, json: nil)
    }

    private static func parseJSON(_ text: String) throws(ParseError) -> ChartIndex {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw ParseError(message: "index is not valid JSON")
        }
        guard let charts = obj["entries"] as? [String: Any] else { throw ParseError(message: "index has no 'entries' object") }
        var entries: [ChartVersionEntry] = []
        var skipped: [String] = []
        for (key, value) in charts.sorted(by: { $0.key < $1.key }) {
            guard let versions = value as? [[String: Any]] else {
                skipped.append("\(key): versions are not a list")
                continue
            }
            for v in versions {
                let name = key
                guard let version = v["version"] as? String, isSafeComponent(name), isSafeComponent(version) else {
                    skipped.append("\(key): unusable entry")
                    continue
                }
                let urls = v["urls"] as? [String] ?? []
                guard !urls.isEmpty else {
                    skipped.append("\(name) \(version): no urls")
                    continue
                }
                entries.append(ChartVersionEntry(name: name, version: version, urls: urls, digest: parseDigest(v["digest"] as? String),
                                                 itemLines: nil, urlsKey: nil, urlsLines: nil,
                                                 appVersion: v["appVersion"] as? String, created: v["created"] as? String))
            }
        }
        return ChartIndex(format: .json, text: text, entries: entries, skipped: skipped, json: obj)
    }
}

// [String: Any] from JSONSerialization is immutable property-list data.
extension ChartIndex: @unchecked Sendable {}
