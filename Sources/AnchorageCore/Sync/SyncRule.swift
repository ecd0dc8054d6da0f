/// What one `image =` or `chart =` line in `[sync]` asks to keep local.
public enum SyncRule: Sendable, CustomStringConvertible {
    public enum TagSelector: Sendable, CustomStringConvertible {
        case tag(Tag)
        case regex(String)
        case range(VersionRange)
        case digest(Digest)

        public var description: String {
            switch self {
            case .tag(let t): ":\(t)"
            case .regex(let r): ":~\(r)"
            case .range(let r): ":\(r)"
            case .digest(let d): "@\(d)"
            }
        }

        var isPattern: Bool {
            switch self {
            case .regex, .range: true
            default: false
            }
        }
    }

    case image(registry: String, name: RepositoryName, selector: TagSelector)
    case chart(repository: String, chart: String, range: VersionRange?)

    public var description: String {
        switch self {
        case .image(let r, let n, let s): "image \(r)/\(n)\(s)"
        case .chart(let r, let c, let v): "chart \(r)/\(c)" + (v.map { "@\($0)" } ?? "")
        }
    }

    /// `REGISTRY/NAME:TAG`, `REGISTRY/NAME:~REGEX`, `REGISTRY/NAME:RANGE`,
    /// `REGISTRY/NAME@DIGEST`; REGISTRY must be a `[registry]` section (a
    /// reference without one uses the default registry).
    static func parseImage(_ text: String, registries: [String], defaultRegistry: String, dockerHubNames: Set<String>) -> Result<SyncRule, RuleError> {
        let t = text.trimmed(" \t")
        var rest = Substring(t)
        var registry = defaultRegistry
        if let slash = rest.firstIndex(of: "/"), registries.contains(String(rest[..<slash])) {
            registry = String(rest[..<slash])
            rest = rest[rest.index(after: slash)...]
        }
        let selector: TagSelector
        let nameText: Substring
        if let at = rest.firstIndex(of: "@") {
            guard let d = Digest(rest[rest.index(after: at)...]) else { return .failure(RuleError("invalid digest in '\(t)'")) }
            selector = .digest(d)
            nameText = rest[..<at]
        } else {
            // The selector starts at the first ':' after the last '/'.
            let lastSlash = rest.lastIndex(of: "/") ?? rest.startIndex
            guard let colon = rest[lastSlash...].firstIndex(of: ":") else {
                return .failure(RuleError("'\(t)' names no tag: add :TAG, :~REGEX, :RANGE or @DIGEST"))
            }
            nameText = rest[..<colon]
            let spec = String(rest[rest.index(after: colon)...])
            if spec.hasPrefix("~") && !spec.hasPrefix("~>") && (spec.count > 1 && !(spec.dropFirst().first?.isNumber ?? false)) {
                let pattern = String(spec.dropFirst())
                guard (try? Regex(pattern)) != nil else { return .failure(RuleError("invalid regular expression '\(pattern)'")) }
                selector = .regex(pattern)
            } else if let tag = Tag(spec) {
                selector = .tag(tag)
            } else if let r = VersionRange(spec) {
                selector = .range(r)
            } else {
                return .failure(RuleError("invalid tag, regular expression or version range '\(spec)'"))
            }
        }
        guard var name = RepositoryName(nameText) else { return .failure(RuleError("invalid repository name '\(nameText)'")) }
        if dockerHubNames.contains(registry), name.components.count == 1, let lib = RepositoryName("library/\(name.value)") {
            name = lib
        }
        return .success(.image(registry: registry, name: name, selector: selector))
    }

    /// `REPO/CHART` or `REPO/CHART@RANGE`; REPO must be a `[charts]` section.
    static func parseChart(_ text: String, repositories: [String]) -> Result<SyncRule, RuleError> {
        let t = text.trimmed(" \t")
        guard let slash = t.firstIndex(of: "/") else { return .failure(RuleError("expected REPO/CHART[@RANGE], got '\(t)'")) }
        let repo = String(t[..<slash])
        guard repositories.contains(repo) else { return .failure(RuleError("unknown chart repository '\(repo)' (configure [charts \"\(repo)\"])")) }
        var chart = String(t[t.index(after: slash)...])
        var range: VersionRange?
        if let at = chart.firstIndex(of: "@") {
            guard let r = VersionRange(String(chart[chart.index(after: at)...])) else { return .failure(RuleError("invalid version range in '\(t)'")) }
            range = r
            chart = String(chart[..<at])
        }
        guard ChartIndex.isSafeComponent(chart) else { return .failure(RuleError("invalid chart name '\(chart)'")) }
        return .success(.chart(repository: repo, chart: chart, range: range))
    }
}

/// Why a sync rule does not parse (becomes a config error with its line).
public struct RuleError: Error, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
}
