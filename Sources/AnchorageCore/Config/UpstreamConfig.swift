/// `[upstream]`: how every upstream is talked to.
public struct UpstreamConfig: Sendable, Equatable {
    public var connectTimeout: ConfigDuration
    public var stallTimeout: ConfigDuration
    public var breakerThreshold: Int
    public var breakerCooldown: ConfigDuration
    public var fetchWorkers: Int

    static let schema = SectionSchema(kind: "upstream", named: false, keys: [
        ConfigKey("connect_timeout", .duration, default: "10s", help: "give up connecting to an upstream after this"),
        ConfigKey("stall_timeout", .duration, default: "30s", help: "abort a transfer that moves under 1 KiB/s for this long"),
        ConfigKey("breaker_threshold", .integer(1...1000), default: "3", help: "consecutive upstream failures that mark it down"),
        ConfigKey("breaker_cooldown", .duration, default: "30s", help: "a down upstream is not asked for this long (cache only)"),
        ConfigKey("workers", .integer(1...512), default: "16", help: "threads for manifest and metadata requests (blob fetches get their own)"),
    ])

    init(_ r: SectionReader) {
        connectTimeout = r.duration("connect_timeout")
        stallTimeout = r.duration("stall_timeout")
        breakerThreshold = r.int("breaker_threshold")
        breakerCooldown = r.duration("breaker_cooldown")
        fetchWorkers = r.int("workers")
    }

    func render() -> [(String, String)] {
        [("connect_timeout", connectTimeout.description), ("stall_timeout", stallTimeout.description),
         ("breaker_threshold", "\(breakerThreshold)"), ("breaker_cooldown", breakerCooldown.description),
         ("workers", "\(fetchWorkers)")]
    }
}
