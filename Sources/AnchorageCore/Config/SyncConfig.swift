/// `[sync]`: what must always be local, and when the daemon fetches it.
public struct SyncConfig: Sendable {
    public struct Rule: Sendable {
        public let rule: SyncRule
        public let line: Int
        public let text: String
        /// `image = SOURCE -> NS/NAME`: also copied into a hosted repository.
        public var into: HostedTarget?
    }

    /// A hosted repository a sync rule copies images into.
    public struct HostedTarget: Sendable, Equatable {
        public let namespace: String
        public let name: RepositoryName
    }

    public var schedule: Schedule?
    public var platforms: [String]?     // "os/arch[/variant]"; nil = all
    public var rules: [Rule]
    public var keepLatest: Int?
    public var pin: Bool
    public var concurrency: Int

    static let schema = SectionSchema(kind: "sync", named: false, keys: [
        ConfigKey("schedule", .string, help: "in-daemon sync: 'every 6h' or a 5-field cron expression (UTC); absent: none"),
        ConfigKey("platforms", .string, help: "children of multi-arch indexes to fetch, e.g. linux/amd64, linux/arm64 (default: all)"),
        ConfigKey("image", .string, repeatable: true, help: "REGISTRY/NAME:TAG, :~REGEX, :SEMVER-RANGE or @DIGEST, optionally -> HOSTED/NAME to copy it there; repeatable"),
        ConfigKey("chart", .string, repeatable: true, help: "REPO/CHART (every version) or REPO/CHART@SEMVER-RANGE; repeatable"),
        ConfigKey("keep_latest", .integer(1...100_000), help: "for patterns and charts: only the N newest matching tags/versions"),
        ConfigKey("pin", .bool, default: "true", help: "synced content is never evicted by the LRU"),
        ConfigKey("concurrency", .integer(1...64), default: "4", help: "items fetched at once"),
    ])

    static let empty = SyncConfig(schedule: nil, platforms: nil, rules: [], keepLatest: nil, pin: true, concurrency: 4)

    init(schedule: Schedule?, platforms: [String]?, rules: [Rule], keepLatest: Int?, pin: Bool, concurrency: Int) {
        self.schedule = schedule
        self.platforms = platforms
        self.rules = rules
        self.keepLatest = keepLatest
        self.pin = pin
        self.concurrency = concurrency
    }

    init(_ r: SectionReader, registries: [RegistryConfig], charts: [ChartsConfig], hosted: [String] = [], defaultRegistry: String) throws(ConfigError) {
        if let s = r.string("schedule") {
            guard let sched = Schedule(s) else {
                throw r.error("schedule", "invalid schedule '\(s)': expected 'every 6h' or a cron expression like '30 2 * * *'")
            }
            schedule = sched
        }
        if let p = r.string("platforms") {
            let list = p.split(separator: ",").map { $0.trimmed(" ") }
            for item in list where item.split(separator: "/").count < 2 || item.split(separator: "/").count > 3 {
                throw r.error("platforms", "invalid platform '\(item)': expected os/arch or os/arch/variant")
            }
            platforms = list
        }
        keepLatest = r.isSet("keep_latest") ? r.int("keep_latest") : nil
        pin = r.bool("pin")
        concurrency = r.int("concurrency")
        let hub = Set(registries.filter { $0.name == "docker.io" || $0.url.contains("registry-1.docker.io") }.map(\.name))
        var rules: [Rule] = []
        for e in r.section.entries where e.key == "image" || e.key == "chart" {
            var source = e.value
            var into: HostedTarget?
            if e.key == "image", let arrow = e.value.range(of: "->") {
                source = String(e.value[..<arrow.lowerBound])
                let target = e.value[arrow.upperBound...].trimmed(" \t")
                guard let slash = target.firstIndex(of: "/"), hosted.contains(String(target[..<slash])),
                      let name = RepositoryName(target[target.index(after: slash)...]) else {
                    throw ConfigError(file: r.file, line: e.line, "invalid image rule: '-> \(target)' must name a repository in a [hosted] namespace (configured: \(hosted.joined(separator: ", ")))")
                }
                into = HostedTarget(namespace: String(target[..<slash]), name: name)
            }
            let parsed = e.key == "image"
                ? SyncRule.parseImage(source, registries: registries.map(\.name), defaultRegistry: defaultRegistry, dockerHubNames: hub)
                : SyncRule.parseChart(source, repositories: charts.map(\.name))
            switch parsed {
            case .success(let rule): rules.append(Rule(rule: rule, line: e.line, text: e.value, into: into))
            case .failure(let why): throw ConfigError(file: r.file, line: e.line, "invalid \(e.key) rule: \(why.message)")
            }
        }
        self.rules = rules
    }

    func render() -> [(String, String)] {
        var out: [(String, String)] = []
        if let schedule { out.append(("schedule", schedule.description)) }
        if let platforms { out.append(("platforms", platforms.joined(separator: ", "))) }
        for r in rules {
            switch r.rule {
            case .image: out.append(("image", r.text))
            case .chart: out.append(("chart", r.text))
            }
        }
        if let keepLatest { out.append(("keep_latest", "\(keepLatest)")) }
        out.append(("pin", "\(pin)"))
        out.append(("concurrency", "\(concurrency)"))
        return out
    }
}
