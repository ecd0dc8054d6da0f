/// An address to listen on: `0.0.0.0:5000`, `127.0.0.1:5000`, `[::]:5000`.
/// A byte count parsed from `20GiB`, `512MB`, `1000` (B, KB/MB/GB/TB = 10^n,
/// KiB/MiB/GiB/TiB = 2^n). Printed back in the largest exact binary unit.
public struct ByteSize: Sendable, Equatable, Comparable, CustomStringConvertible {
    public let bytes: Int64

    public init(_ bytes: Int64) { self.bytes = bytes }

    public init?(parsing s: String) {
        let t = s.trimmed(" \t")
        let digits = t.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = t.dropFirst(digits.count).trimmed(" ")
        guard !digits.isEmpty, let value = Double(digits), value >= 0 else { return nil }
        let multipliers: [String: Double] = [
            "": 1, "B": 1,
            "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
            "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824, "TiB": 1_099_511_627_776,
        ]
        guard let m = multipliers[unit] else { return nil }
        let total = value * m
        guard total < 9.0e18, total == total.rounded(.down) || unit != "" else { return nil }
        bytes = Int64(total.rounded(.down))
    }

    public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

    public var description: String {
        for (unit, m) in [("TiB", Int64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= m && bytes % m == 0 {
            return "\(bytes / m)\(unit)"
        }
        return "\(bytes)B"
    }
}

/// A duration parsed from `250ms`, `30s`, `5m`, `6h`, `1d`; printed back in
/// the largest exact unit.
public struct ConfigDuration: Sendable, Equatable, Comparable, CustomStringConvertible {
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public static func seconds(_ s: Int64) -> ConfigDuration { ConfigDuration(milliseconds: s * 1000) }

    public init?(parsing s: String) {
        let t = s.trimmed(" \t")
        let digits = t.prefix { $0.isASCII && $0.isNumber }
        let unit = t.dropFirst(digits.count).trimmed(" ")
        guard !digits.isEmpty, digits.count <= 12, let n = Int64(digits) else { return nil }
        let m: Int64
        switch unit {
        case "ms": m = 1
        case "s": m = 1000
        case "m": m = 60_000
        case "h": m = 3_600_000
        case "d": m = 86_400_000
        default: return nil
        }
        milliseconds = n * m
    }

    public var seconds: Double { Double(milliseconds) / 1000 }

    public static func < (a: ConfigDuration, b: ConfigDuration) -> Bool { a.milliseconds < b.milliseconds }

    public var description: String {
        if milliseconds == 0 { return "0s" }
        for (unit, m) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where milliseconds % m == 0 {
            return "\(milliseconds / m)\(unit)"
        }
        return "\(milliseconds)ms"
    }
}
