import Synchronization

/// A counter family with labels, for the Prometheus exposition.
final class LabeledCounter: Sendable {
    let name: String
    let help: String
    let labels: [String]
    private let values = Mutex<[[String]: Int64]>([:])

    init(_ name: String, _ help: String, labels: [String]) {
        self.name = name
        self.help = help
        self.labels = labels
    }

    func add(_ labelValues: [String], _ n: Int64 = 1) {
        values.withLock { $0[labelValues, default: 0] += n }
    }

    var snapshot: [[String]: Int64] { values.withLock { $0 } }

    func render(into out: inout String) {
        PrometheusText.counter(&out, name, help, snapshot.map { (Array(zip(labels, $0.key)), $0.value) })
    }
}

/// One histogram: counts per bucket (rendered cumulative), sum and count. A
/// value: its owner keeps it under its own lock.
struct Histogram {
    static let ttfbBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    let buckets: [Double]
    private(set) var counts: [Int64]
    private(set) var sum = 0.0
    private(set) var count: Int64 = 0

    init(buckets: [Double]) {
        self.buckets = buckets
        counts = Array(repeating: 0, count: buckets.count)
    }

    /// Counts land in the first bucket that holds `v` (cheap on the hot path);
    /// `render` makes them cumulative.
    mutating func observe(_ v: Double) {
        if let i = buckets.firstIndex(where: { v <= $0 }) { counts[i] += 1 }
        sum += v
        count += 1
    }

    /// Adds another histogram with the same buckets.
    mutating func merge(_ o: Histogram) {
        for i in counts.indices where i < o.counts.count { counts[i] += o.counts[i] }
        sum += o.sum
        count += o.count
    }

    /// The `_bucket`, `_sum` and `_count` samples (the family's HELP and TYPE
    /// lines are the caller's).
    func render(into out: inout String, name: String, labels: [(String, String)]) {
        let names = labels.map(\.0), values = labels.map(\.1)
        var cumulative: Int64 = 0
        for (i, b) in buckets.enumerated() {
            cumulative += counts[i]
            out += "\(name)_bucket\(PrometheusText.labels(names + ["le"], values + [PrometheusText.number(b)])) \(cumulative)\n"
        }
        out += "\(name)_bucket\(PrometheusText.labels(names + ["le"], values + ["+Inf"])) \(count)\n"
        out += "\(name)_sum\(PrometheusText.labels(names, values)) \(PrometheusText.number(sum))\n"
        out += "\(name)_count\(PrometheusText.labels(names, values)) \(count)\n"
    }
}

/// The Prometheus text exposition format (version 0.0.4).
enum PrometheusText {
    static func labels(_ names: [String], _ values: [String]) -> String {
        guard !names.isEmpty else { return "" }
        return "{" + zip(names, values).map { "\($0)=\"\(escape($1))\"" }.joined(separator: ",") + "}"
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// A counter family: HELP, TYPE and one sample per label set, in a
    /// stable order.
    static func counter(_ out: inout String, _ name: String, _ help: String, _ samples: [([(String, String)], Int64)]) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
        for (l, v) in samples.sorted(by: { $0.0.map(\.1).lexicographicallyPrecedes($1.0.map(\.1)) }) {
            out += "\(name)\(labels(l.map(\.0), l.map(\.1))) \(v)\n"
        }
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    static func gauge(_ out: inout String, _ name: String, _ help: String, _ samples: [([String: String], Double)]) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
        for (labels, v) in samples {
            let keys = labels.keys.sorted()
            out += "\(name)\(self.labels(keys, keys.map { labels[$0]! })) \(number(v))\n"
        }
    }
}
