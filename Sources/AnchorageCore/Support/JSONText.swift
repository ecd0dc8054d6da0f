import Foundation

/// Compact JSON for plain values (dictionaries with String keys, arrays,
/// strings, integers, doubles, booleans, NSNull), keys in byte order.
/// Foundation's writer sorts keys with locale-aware comparison, which cost
/// more than building the console's repository list itself.
enum JSONText {
    static func encode(_ value: Any) -> String {
        var out = ""
        write(value, into: &out)
        return out
    }

    private static func write(_ value: Any, into out: inout String) {
        switch value {
        case let s as String: string(s, into: &out)
        case let b as Bool: out += b ? "true" : "false"
        case let i as Int: out += String(i)
        case let i as Int64: out += String(i)
        case let d as Double: out += d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)) : "null"
        case let a as [Any]:
            out += "["
            for (n, v) in a.enumerated() {
                if n > 0 { out += "," }
                write(v, into: &out)
            }
            out += "]"
        case let o as [String: Any]:
            out += "{"
            for (n, key) in o.keys.sorted().enumerated() {
                if n > 0 { out += "," }
                string(key, into: &out)
                out += ":"
                write(o[key] ?? NSNull(), into: &out)
            }
            out += "}"
        case let n as NSNumber: out += n.stringValue
        default: out += "null"
        }
    }

    private static func string(_ s: String, into out: inout String) {
        out += doubleQuoted(s) { u in
            // `<` too: a JSON body can never be read as markup.
            if u == "<" { return "\\u003c" }
            return u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029 ? String(format: "\\u%04x", u.value) : nil
        }
    }
}
