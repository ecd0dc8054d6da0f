import Foundation

/// Writes the index a client sees: every entry's `urls` become the relative
/// `NAME-VERSION.tgz` under the mirror's own path (so helm never talks to
/// another host and never needs `--pass-credentials`), and with
/// `keep_versions` only the newest N versions of each chart remain.
///
/// YAML is edited in place: only the `urls` lines (and dropped versions)
/// change, every other byte is the upstream's. JSON is re-serialised from
/// the parsed object, which keeps every field.
public enum IndexRewriter {
    public static func rewrite(_ index: ChartIndex, keepVersions: Int?) -> (text: String, kept: [ChartVersionEntry]) {
        let dropped = droppedVersions(index.entries, keep: keepVersions)
        let kept = index.entries.filter { !dropped.contains("\($0.name)\u{0}\($0.version)") }
        switch index.format {
        case .json: return (rewriteJSON(index, dropped: dropped), kept)
        case .yaml: return (rewriteYAML(index, dropped: dropped), kept)
        }
    }

    /// "name\0version" of versions beyond the newest `keep` per chart.
    static func droppedVersions(_ entries: [ChartVersionEntry], keep: Int?) -> Set<String> {
        guard let keep else { return [] }
        var out = Set<String>()
        for (_, versions) in Dictionary(grouping: entries, by: \.name) {
            let sorted = versions.sorted { SemanticVersion.precedes($1.version, $0.version) }
            for e in sorted.dropFirst(keep) { out.insert("\(e.name)\u{0}\(e.version)") }
        }
        return out
    }

    private static func rewriteYAML(_ index: ChartIndex, dropped: Set<String>) -> String {
        var lines = index.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Edits as (range, replacement), applied from the bottom up.
        var edits: [(Range<Int>, [String])] = []
        for e in index.entries {
            if dropped.contains("\(e.name)\u{0}\(e.version)"), let r = e.itemLines {
                edits.append((r, []))
            } else if let r = e.urlsLines, let key = e.urlsKey {
                let original = lines[key.line]
                let cr = original.hasSuffix("\r") ? "\r" : ""
                let prefix = String(original.prefix(key.column))
                let pad = String(repeating: " ", count: key.column)
                edits.append((r, ["\(prefix)urls:\(cr)", "\(pad)- \(e.fileName)\(cr)"]))
            }
        }
        for (range, replacement) in edits.sorted(by: { $0.0.lowerBound > $1.0.lowerBound }) {
            lines.replaceSubrange(range, with: replacement)
        }
        return lines.joined(separator: "\n")
    }

    private static func rewriteJSON(_ index: ChartIndex, dropped: Set<String>) -> String {
        guard var obj = index.json, let charts = obj["entries"] as? [String: Any] else { return index.text }
        var out: [String: Any] = [:]
        for (key, value) in charts {
            guard let versions = value as? [[String: Any]] else { out[key] = value; continue }
            out[key] = versions.compactMap { v -> [String: Any]? in
                guard let version = v["version"] as? String else { return v }
                let name = key
                if dropped.contains("\(name)\u{0}\(version)") { return nil }
                var w = v
                if ChartIndex.isSafeComponent(name), ChartIndex.isSafeComponent(version) { w["urls"] = ["\(name)-\(version).tgz"] }
                return w
            }
        }
        obj["entries"] = out
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else { return index.text }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
