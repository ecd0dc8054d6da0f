/// Something about a configuration file, naming the file and line: an
/// error that stops it loading, or a warning about a line that is accepted
/// but should change (printed at start-up and by `check-config`).
public struct ConfigDiagnostic: Error, CustomStringConvertible, Equatable, Sendable {
    public let file: String
    public let line: Int
    public let message: String

    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

public typealias ConfigError = ConfigDiagnostic
public typealias ConfigWarning = ConfigDiagnostic

/// One `key = value` line.
public struct ConfigEntry: Sendable, Equatable {
    public let key: String
    public let value: String
    public let line: Int
}

/// One `[kind]` or `[kind "name"]` block.
public struct ConfigSection: Sendable {
    public let kind: String
    public let name: String?
    public let line: Int
    public var entries: [ConfigEntry]
}

/// The git-config-like syntax, without meaning: sections, keys, values.
///
///     # comment        ; comment
///     [section]
///     key = value      # trailing comment (after whitespace)
///     [section "name"]
///     key = "quoted value # with hash"
public enum ConfigFileParser {
    public static func parse(_ text: String, file: String) throws(ConfigError) -> [ConfigSection] {
        var sections: [ConfigSection] = []
        var lineNo = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.trimmed(" \t")
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                sections.append(try parseHeader(trimmed, file: file, line: lineNo))
                continue
            }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError(file: file, line: lineNo, "expected 'key = value' or '[section]'")
            }
            let key = trimmed[..<eq].trimmed(" \t")
            guard !key.isEmpty, key.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || $0 == 95 || ($0 >= 48 && $0 <= 57) }) else {
                throw ConfigError(file: file, line: lineNo, "invalid key '\(key)' (lower-case letters, digits and '_')")
            }
            let value = try parseValue(trimmed[trimmed.index(after: eq)...], file: file, line: lineNo)
            guard !sections.isEmpty else {
                throw ConfigError(file: file, line: lineNo, "key '\(key)' outside of any [section]")
            }
            sections[sections.count - 1].entries.append(ConfigEntry(key: key, value: value, line: lineNo))
        }
        return sections
    }

    private static func parseHeader(_ s: String, file: String, line: Int) throws(ConfigError) -> ConfigSection {
        guard let close = s.lastIndex(of: "]") else {
            throw ConfigError(file: file, line: line, "section header without ']'")
        }
        let rest = s[s.index(after: close)...].trimmed(" \t")
        guard rest.isEmpty || rest.hasPrefix("#") || rest.hasPrefix(";") else {
            throw ConfigError(file: file, line: line, "unexpected text after section header")
        }
        let inner = s[s.index(after: s.startIndex)..<close].trimmed(" \t")
        if let q = inner.firstIndex(of: "\"") {
            let kind = inner[..<q].trimmed(" \t")
            let after = inner[inner.index(after: q)...]
            guard after.hasSuffix("\""), after.count >= 2 else {
                throw ConfigError(file: file, line: line, "unterminated quoted section name")
            }
            let name = String(after.dropLast())
            guard !name.isEmpty, !name.contains("\""), isSectionKind(kind) else {
                throw ConfigError(file: file, line: line, "invalid section header [\(inner)]")
            }
            return ConfigSection(kind: kind, name: name, line: line, entries: [])
        }
        guard isSectionKind(inner) else {
            throw ConfigError(file: file, line: line, "invalid section header [\(inner)]")
        }
        return ConfigSection(kind: inner, name: nil, line: line, entries: [])
    }

    private static func isSectionKind(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || $0 == 95 }
    }

    /// A value is either "quoted" (with \" \\ escapes) or bare up to a
    /// comment that follows whitespace.
    private static func parseValue(_ raw: Substring, file: String, line: Int) throws(ConfigError) -> String {
        let s = raw.trimmed(" \t")
        if s.hasPrefix("\"") {
            var out = ""
            var escaped = false
            var idx = s.index(after: s.startIndex)
            while idx < s.endIndex {
                let c = s[idx]
                if escaped {
                    out.append(c)
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    let rest = s[s.index(after: idx)...].trimmed(" \t")
                    guard rest.isEmpty || rest.hasPrefix("#") || rest.hasPrefix(";") else {
                        throw ConfigError(file: file, line: line, "unexpected text after quoted value")
                    }
                    return out
                } else {
                    out.append(c)
                }
                idx = s.index(after: idx)
            }
            throw ConfigError(file: file, line: line, "unterminated quoted value")
        }
        var chars = Array(s)
        for i in chars.indices where (chars[i] == "#" || chars[i] == ";") && i > 0 && (chars[i - 1] == " " || chars[i - 1] == "\t") {
            chars = Array(chars[..<i])
            break
        }
        return String(chars).trimmed(" \t")
    }
}
