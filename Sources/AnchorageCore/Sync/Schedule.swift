import Foundation

/// When the in-daemon sync runs: `every 6h` (also s, m, d) or a 5-field cron
/// expression `minute hour day-of-month month day-of-week` (lists, ranges,
/// steps, `*`; day-of-week 0 or 7 is Sunday; when both day fields are
/// restricted either may match, as in Vixie cron). Times are UTC.
public enum Schedule: Sendable, Equatable, CustomStringConvertible {
    case every(ConfigDuration)
    case cron(CronExpression)

    public init?(_ text: String) {
        let t = text.trimmed(" \t")
        if t.hasPrefix("every ") {
            guard let d = ConfigDuration(parsing: String(t.dropFirst(6))), d.milliseconds >= 1000 else { return nil }
            self = .every(d)
        } else if let c = CronExpression(t) {
            self = .cron(c)
        } else {
            return nil
        }
    }

    /// The first run strictly after `date`.
    public func next(after date: Date) -> Date? {
        switch self {
        case .every(let d): date.addingTimeInterval(d.seconds)
        case .cron(let c): c.next(after: date)
        }
    }

    public var description: String {
        switch self {
        case .every(let d): "every \(d)"
        case .cron(let c): c.text
        }
    }
}

public struct CronExpression: Sendable, Equatable {
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let dayRestricted: Bool, weekdayRestricted: Bool
    public let text: String

    public init?(_ text: String) {
        let f = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard f.count == 5,
              let mi = CronExpression.field(f[0], 0...59), let h = CronExpression.field(f[1], 0...23),
              let d = CronExpression.field(f[2], 1...31), let mo = CronExpression.field(f[3], 1...12),
              var w = CronExpression.field(f[4], 0...7) else { return nil }
        if w.contains(7) { w.remove(7); w.insert(0) }
        minutes = mi; hours = h; days = d; months = mo; weekdays = w
        dayRestricted = f[2] != "*"
        weekdayRestricted = f[4] != "*"
        self.text = f.joined(separator: " ")
    }

    static func field(_ s: String, _ range: ClosedRange<Int>) -> Set<Int>? {
        var out = Set<Int>()
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            var step = 1
            var body = Substring(part)
            if let slash = part.firstIndex(of: "/") {
                guard let st = Int(part[part.index(after: slash)...]), st > 0 else { return nil }
                step = st
                body = part[..<slash]
            }
            let lo: Int, hi: Int
            if body == "*" {
                lo = range.lowerBound; hi = range.upperBound
            } else if let dash = body.firstIndex(of: "-") {
                guard let a = Int(body[..<dash]), let b = Int(body[body.index(after: dash)...]), a <= b else { return nil }
                lo = a; hi = b
            } else {
                guard let a = Int(body) else { return nil }
                lo = a; hi = part.contains("/") ? range.upperBound : a
            }
            guard range.contains(lo), range.contains(hi) else { return nil }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out.isEmpty ? nil : out
    }

    public func next(after date: Date) -> Date? {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        // Start at the next whole minute; walk days first, then minutes within a day.
        let start = Date(timeIntervalSince1970: (floor(date.timeIntervalSince1970 / 60) + 1) * 60)
        var day = cal.startOfDay(for: start)
        for _ in 0..<(366 * 5) {
            let c = cal.dateComponents([.month, .day, .weekday], from: day)
            let dayOK = days.contains(c.day!), wdOK = weekdays.contains(c.weekday! - 1)
            let matches = dayRestricted && weekdayRestricted ? (dayOK || wdOK) : (dayOK && wdOK)
            if months.contains(c.month!) && matches {
                for h in hours.sorted() {
                    for m in minutes.sorted() {
                        let t = day.addingTimeInterval(Double(h * 3600 + m * 60))
                        if t >= start { return t }
                    }
                }
            }
            day = cal.date(byAdding: .day, value: 1, to: day)!
        }
        return nil
    }
}
