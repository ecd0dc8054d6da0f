import Foundation

/// Writes hosted chart versions as `index.yaml` entries: block YAML with
/// sorted keys (as `helm repo index` writes them), every scalar a
/// double-quoted string except the fields Helm reads as booleans.
enum IndexEntryWriter {
    /// Chart.yaml's fields as JSON-compatible values.
    static func fields(_ node: YAMLNode, key: String? = nil, inDependency: Bool = false) -> Any {
        switch node.value {
        case .null:
            return NSNull()
        case .scalar(let s):
            if key == "deprecated" || (inDependency && key == "enabled"), s == "true" || s == "false" { return s == "true" }
            return s
        case .sequence(let items):
            return items.map { fields($0, inDependency: key == "dependencies") }
        case .mapping(let pairs):
            var out: [String: Any] = [:]
            for p in pairs { out[p.key] = fields(p.node, key: p.key, inDependency: inDependency) }
            return out
        }
    }

    /// One entry as the lines of a sequence item under a chart's name.
    static func entry(_ fields: [String: Any]) -> String {
        var out = ""
        mapping(fields, indent: 4, into: &out)
        // The first line's indent becomes the item marker.
        return "  - " + out.dropFirst(4)
    }

    private static func mapping(_ m: [String: Any], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for key in m.keys.sorted() {
            out += pad + plainOrQuoted(key) + ":"
            value(m[key] ?? NSNull(), indent: indent, into: &out)
        }
    }

    private static func value(_ v: Any, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case let m as [String: Any]:
            if m.isEmpty { out += " {}\n"; return }
            out += "\n"
            mapping(m, indent: indent + 2, into: &out)
        case let a as [Any]:
            if a.isEmpty { out += " []\n"; return }
            out += "\n"
            for item in a {
                if let m = item as? [String: Any], !m.isEmpty {
                    var inner = ""
                    mapping(m, indent: indent + 2, into: &inner)
                    out += pad + "- " + inner.dropFirst(indent + 2)
                } else {
                    out += pad + "-"
                    value(item, indent: indent + 2, into: &out)
                }
            }
        case let b as Bool:
            out += b ? " true\n" : " false\n"
        case let s as String:
            out += " " + quoted(s) + "\n"
        default:
            out += " null\n"
        }
    }

    private static func plainOrQuoted(_ key: String) -> String {
        let plain = !key.isEmpty && key.utf8.allSatisfy { isalnum(Int32($0)) != 0 || $0 == 46 || $0 == 47 || $0 == 45 || $0 == 95 }
            && key.utf8.first.map { isalpha(Int32($0)) != 0 } == true
        return plain ? key : quoted(key)
    }

    /// A YAML double-quoted scalar (JSON's escapes are YAML's).
    static func quoted(_ s: String) -> String {
        doubleQuoted(s) { u in
            let v = u.value
            return v < 0x20 || v == 0x7f || (v >= 0x80 && v < 0xa0) || v == 0x2028 || v == 0x2029 ? String(format: "\\u%04x", v) : nil
        }
    }
}
