import Foundation

/// An htpasswd file of bcrypt entries (`htpasswd -B`): `user:$2y$…`.
/// Other schemes (MD5-crypt, SHA1, plain) are refused with the line number:
/// they are too weak to put in front of a supply chain.
public struct Htpasswd: Sendable {
    public let users: [String: String]

    public static func load(_ path: String) throws(ConfigError) -> Htpasswd {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, "cannot read htpasswd file")
        }
        var users: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmed(" \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw ConfigError(file: path, line: n + 1, "expected user:hash")
            }
            let hash = String(line[line.index(after: colon)...])
            guard hash.hasPrefix("$2y$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$"), hash.utf8.count == 60 else {
                throw ConfigError(file: path, line: n + 1, "only bcrypt entries are accepted (create them with htpasswd -B)")
            }
            users[String(line[..<colon])] = hash
        }
        return Htpasswd(users: users)
    }
}
