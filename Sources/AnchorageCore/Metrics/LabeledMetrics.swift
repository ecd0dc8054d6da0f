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
        out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
        for (lv, v) in snapshot.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            out += "\(name)\(PrometheusText.labels(labels, lv)) \(v)\n"
        }
    }
}

/// A histogram family with labels (cumulative buckets, sum, count).
final class LabeledHistogram: Sendable {
    let name: String
    let help: String
    let labels: [String]
    let buckets: [Double]
    private struct H { var counts: [Int64]; var sum: Double; var count: Int64 }
    private let values = Mutex<[[String]: H]>([:])

    init(_ name: String, _ help: String, labels: [String], buckets: [Double]) {
        self.name = name
        self.help = help
        self.labels = labels
        self.buckets = buckets
    }

    func observe(_ labelValues: [String], _ v: Double) {
        values.withLock { m in
            var h = m[labelValues] ?? H(counts: Array(repeating: 0, count: buckets.count), sum: 0, count: 0)
            for (i, b) in buckets.enumerated() where v <= b { h.counts[i] += 1 }
            h.sum += v
            h.count += 1
            m[labelValues] = h
        }
    }

    func render(into out: inout String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (lv, h) in values.withLock({ $0 }).sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            for (i, b) in buckets.enumerated() {
                out += "\(name)_bucket\(PrometheusText.labels(labels + ["le"], lv + [PrometheusText.number(b)])) \(h.counts[i])\n"
            }
            out += "\(name)_bucket\(PrometheusText.labels(labels + ["le"], lv + ["+Inf"])) \(h.count)\n"
            out += "\(name)_sum\(PrometheusText.labels(labels, lv)) \(PrometheusText.number(h.sum))\n"
            out += "\(name)_count\(PrometheusText.labels(labels, lv)) \(h.count)\n"
        }
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
