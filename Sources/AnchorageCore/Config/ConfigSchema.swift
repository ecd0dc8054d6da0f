/// How one key's value is read.
public enum ConfigValueKind: Sendable {
    case string, path, url, size, duration, bool, listen, cidr
    case oneOf([String])
    case integer(ClosedRange<Int>)

    /// The spellings a `.bool` accepts (and keys that take a boolean among other words).
    static let trueWords = ["true", "yes", "on"]
    static let falseWords = ["false", "no", "off"]

    var expectation: String {
        switch self {
        case .string: "a string"
        case .path: "a file system path"
        case .url: "an http:// or https:// URL"
        case .size: "a size such as 512MiB or 20GB"
        case .duration: "a duration such as 30s, 5m, 6h"
        case .bool: "true or false"
        case .listen: "an address such as 0.0.0.0:5000 or [::]:5000"
        case .oneOf(let words): "one of \(words.joined(separator: ", "))"
        case .cidr: "an address or CIDR block such as 10.0.0.0/8 or fd00::/8"
        case .integer(let r): "an integer in \(r.lowerBound)...\(r.upperBound)"
        }
    }
}

/// One key a section accepts, with its default and its one-line help.
/// Every section declares its keys next to the code that reads them; the
/// union is what `mirror.conf.example` must document (checked by a test).
public struct ConfigKey: Sendable {
    public let name: String
    public let kind: ConfigValueKind
    public let repeatable: Bool
    public let required: Bool
    public let defaultValue: String?
    public let help: String

    public init(_ name: String, _ kind: ConfigValueKind, default defaultValue: String? = nil, repeatable: Bool = false, required: Bool = false, help: String) {
        self.name = name
        self.kind = kind
        self.repeatable = repeatable
        self.required = required
        self.defaultValue = defaultValue
        self.help = help
    }
}

public struct SectionSchema: Sendable {
    public let kind: String
    /// `[kind "NAME"]` sections may repeat with different names.
    public let named: Bool
    public let keys: [ConfigKey]
    /// Keys earlier versions knew and this one ignores, with what to do
    /// instead: an old file still starts, with a warning naming the line.
    public var retired: [String: String] = [:]
    /// Values earlier versions accepted for a key, read as another value
    /// with a warning: `[key: [old: new]]`.
    public var retiredValues: [String: [String: String]] = [:]

    func key(_ name: String) -> ConfigKey? { keys.first { $0.name == name } }
}

/// Reads one section against its schema: refuses unknown and duplicate keys,
/// reports missing required keys, and parses typed values, every error with
/// the file and line.
struct SectionReader {
    let schema: SectionSchema
    private(set) var section: ConfigSection
    let file: String
    /// Lines that parse but deserve a word (retired keys and values).
    private(set) var warnings: [ConfigWarning] = []

    init(schema: SectionSchema, section: ConfigSection, file: String) throws(ConfigError) {
        self.schema = schema
        self.section = section
        self.file = file
        var seen: [String: Int] = [:]
        for (i, e) in section.entries.enumerated() {
            if let new = schema.retiredValues[e.key]?[e.value] {
                warnings.append(ConfigWarning(file: file, line: e.line, "'\(e.key) = \(e.value)' is no longer supported; read as '\(e.key) = \(new)'"))
                self.section.entries[i] = ConfigEntry(key: e.key, value: new, line: e.line)
            }
        }
        for e in self.section.entries {
            if let advice = schema.retired[e.key] {
                warnings.append(ConfigWarning(file: file, line: e.line, "key '\(e.key)' in [\(schema.kind)] is no longer used and is ignored: \(advice)"))
                continue
            }
            guard let k = schema.key(e.key) else {
                let known = schema.keys.map(\.name).joined(separator: ", ")
                throw ConfigError(file: file, line: e.line, "unknown key '\(e.key)' in [\(schema.kind)] (known: \(known))")
            }
            if !k.repeatable, let first = seen[e.key] {
                throw ConfigError(file: file, line: e.line, "duplicate key '\(e.key)' (first set on line \(first))")
            }
            seen[e.key] = seen[e.key] ?? e.line
            try validate(e.value, k, line: e.line)
        }
        for k in schema.keys where k.required && seen[k.name] == nil {
            throw ConfigError(file: file, line: section.line, "missing required key '\(k.name)' in \(sectionLabel)")
        }
    }

    var sectionLabel: String { section.name.map { "[\(schema.kind) \"\($0)\"]" } ?? "[\(schema.kind)]" }

    private func validate(_ v: String, _ k: ConfigKey, line: Int) throws(ConfigError) {
        let ok: Bool
        switch k.kind {
        case .string: ok = true
        case .path: ok = !v.isEmpty && !v.contains("\0")
        case .url: ok = (v.hasPrefix("http://") || v.hasPrefix("https://")) && v.count > 8 && !v.contains(" ")
        case .size: ok = ByteSize(parsing: v) != nil
        case .duration: ok = ConfigDuration(parsing: v) != nil
        case .bool: ok = ConfigValueKind.trueWords.contains(v) || ConfigValueKind.falseWords.contains(v)
        case .listen: ok = ListenAddress(parsing: v) != nil
        case .oneOf(let words): ok = words.contains(v)
        case .cidr: ok = AddressRange(v) != nil
        case .integer(let r): ok = Int(v).map { r.contains($0) } ?? false
        }
        guard ok else {
            throw ConfigError(file: file, line: line, "invalid value '\(v)' for '\(k.name)': expected \(k.kind.expectation)")
        }
        if case .url = k.kind, let scheme = v.range(of: "://"), v[scheme.upperBound...].prefix(while: { $0 != "/" }).contains("@") {
            // Never echo it: the URL is shown by check-config, the log and /api/status.
            throw ConfigError(file: file, line: line, "'\(k.name)' must not carry credentials (user:password@): set username and password_file instead")
        }
    }

    func line(_ key: String) -> Int { section.entries.last { $0.key == key }?.line ?? section.line }

    /// The last value set, else the schema default.
    func raw(_ key: String) -> String? {
        section.entries.last { $0.key == key }?.value ?? schema.key(key)?.defaultValue
    }

    func isSet(_ key: String) -> Bool { section.entries.contains { $0.key == key } }

    func all(_ key: String) -> [String] {
        let set = section.entries.filter { $0.key == key }.map(\.value)
        if set.isEmpty, let d = schema.key(key)?.defaultValue { return [d] }
        return set
    }

    func string(_ key: String) -> String? { raw(key) }
    func size(_ key: String) -> ByteSize { raw(key).flatMap(ByteSize.init(parsing:)) ?? ByteSize(0) }
    func duration(_ key: String) -> ConfigDuration { raw(key).flatMap(ConfigDuration.init(parsing:)) ?? ConfigDuration(milliseconds: 0) }
    func bool(_ key: String) -> Bool { ConfigValueKind.trueWords.contains(raw(key) ?? "false") }
    func int(_ key: String) -> Int { raw(key).flatMap { Int($0) } ?? 0 }
    func error(_ key: String, _ message: String) -> ConfigError { ConfigError(file: file, line: line(key), message) }
    mutating func warn(_ key: String, _ message: String) { warnings.append(ConfigWarning(file: file, line: line(key), message)) }
}
