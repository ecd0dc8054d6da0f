/// A semver range as npm/Helm write them: comparators joined by spaces (and),
/// alternatives by `||` (or). `>=1.26 <1.28`, `^1.2`, `~1.2.3`, `1.2.x`,
/// `=1.0.0`, `!=1.1.0`. Partial versions fill with zeros. Pre-releases match
/// only when the range itself names one.
public struct VersionRange: Sendable, CustomStringConvertible {
    enum Op: String, Sendable { case lt = "<", le = "<=", gt = ">", ge = ">=", eq = "=", ne = "!=" }
    struct Comparator: Sendable { let op: Op; let version: SemanticVersion }

    let alternatives: [[Comparator]]
    let allowsPrerelease: Bool
    public let description: String

    public init?(_ text: String) {
        let t = text.trimmed(" \t")
        guard !t.isEmpty else { return nil }
        var alts: [[Comparator]] = []
        var pre = false
        for part in t.components(separatedBy: "||") {
            var comps: [Comparator] = []
            for raw in part.split(separator: " ").map(String.init) where !raw.isEmpty {
                guard let c = VersionRange.expand(raw) else { return nil }
                comps += c
            }
            guard !comps.isEmpty else { return nil }
            if comps.contains(where: { !$0.version.prerelease.isEmpty }) { pre = true }
            alts.append(comps)
        }
        alternatives = alts
        allowsPrerelease = pre
        description = t
    }

    private static func version(_ s: String) -> SemanticVersion? {
        let parts = s.split(separator: ".").map(String.init)
        let filled = parts.map { $0 == "x" || $0 == "X" || $0 == "*" ? "0" : $0 }
        return SemanticVersion(filled.joined(separator: "."))
    }

    /// One written comparator as plain ones (`^1.2` → `>=1.2.0 <2.0.0`).
    private static func expand(_ raw: String) -> [Comparator]? {
        for op in ["<=", ">=", "!=", "<", ">", "="] where raw.hasPrefix(op) {
            guard let v = version(String(raw.dropFirst(op.count))) else { return nil }
            return [Comparator(op: Op(rawValue: op)!, version: v)]
        }
        if raw.hasPrefix("^") {
            guard let v = version(String(raw.dropFirst())) else { return nil }
            let upper = v.major > 0 ? "\(v.major + 1).0.0" : v.minor > 0 ? "0.\(v.minor + 1).0" : "0.0.\(v.patch + 1)"
            return [Comparator(op: .ge, version: v), Comparator(op: .lt, version: SemanticVersion(upper)!)]
        }
        if raw.hasPrefix("~") {
            guard let v = version(String(raw.dropFirst())) else { return nil }
            return [Comparator(op: .ge, version: v), Comparator(op: .lt, version: SemanticVersion("\(v.major).\(v.minor + 1).0")!)]
        }
        // 1.2.x / 1.2 / 1: a wildcard range.
        let parts = raw.split(separator: ".")
        let fixed = parts.prefix { $0 != "x" && $0 != "X" && $0 != "*" }
        guard let v = version(raw) else { return nil }
        switch fixed.count {
        case 0: return [Comparator(op: .ge, version: SemanticVersion("0.0.0")!)]
        case 1: return [Comparator(op: .ge, version: v), Comparator(op: .lt, version: SemanticVersion("\(v.major + 1).0.0")!)]
        case 2 where parts.count == 2 || parts.count == 3 && fixed.count == 2:
            return [Comparator(op: .ge, version: v), Comparator(op: .lt, version: SemanticVersion("\(v.major).\(v.minor + 1).0")!)]
        default: return [Comparator(op: .eq, version: v)]
        }
    }

    public func contains(_ s: String) -> Bool {
        guard let v = SemanticVersion(s) else { return false }
        if !v.prerelease.isEmpty && !allowsPrerelease { return false }
        return alternatives.contains { comps in
            comps.allSatisfy { c in
                switch c.op {
                case .lt: v < c.version
                case .le: !(c.version < v)
                case .gt: c.version < v
                case .ge: !(v < c.version)
                case .eq: v == c.version
                case .ne: !(v == c.version)
                }
            }
        }
    }
}
