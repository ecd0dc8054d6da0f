import Glibc

/// Structured logging in logfmt on stderr, one line per event. A line is
/// written with a single write(2) so lines from different threads never mix.
public enum Log {
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warn, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String { ["debug", "info", "warn", "error"][rawValue] }
    }

    nonisolated(unsafe) public static var minimumLevel: Level = .info

    public static func debug(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.debug, msg, fields) }
    public static func info(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.info, msg, fields) }
    public static func warn(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.warn, msg, fields) }
    public static func error(_ msg: String, _ fields: KeyValuePairs<String, String> = [:]) { emit(.error, msg, fields) }

    static func emit(_ level: Level, _ msg: String, _ fields: KeyValuePairs<String, String>) {
        guard level >= minimumLevel else { return }
        var line = "time=\(Timestamp.nowRFC3339()) level=\(level.name) msg=\(quote(msg))"
        for (k, v) in fields {
            line += " \(k)=\(quote(v))"
        }
        line += "\n"
        writeLine(line)
    }

    static func writeLine(_ line: String) {
        var l = line
        l.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    /// logfmt quoting: bare when safe, else double-quoted with escapes.
    public static func quote(_ s: String) -> String {
        if !s.isEmpty && s.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != 34 && $0 != 61 && $0 != 92 }) { return s }
        return doubleQuoted(s) { c in c.value < 32 || c.value == 127 ? "\\u{\(String(c.value, radix: 16))}" : nil }
    }
}

/// One access-log line per request, logfmt, on stderr.
enum AccessLog {
    static func write(client: String, method: String, path: String, status: Int, bytes: Int64, micros: UInt64, cache: String?) {
        let ms = Double(micros) / 1000
        let line = "time=\(Timestamp.nowRFC3339()) level=info msg=access client=\(client) method=\(Log.quote(method)) path=\(Log.quote(path)) status=\(status) bytes=\(bytes) duration_ms=\(formatMillis(ms)) cache=\(cache ?? "-")\n"
        Log.writeLine(line)
    }

    static func formatMillis(_ ms: Double) -> String {
        let v = (ms * 1000).rounded() / 1000
        return String(v)
    }
}

enum Timestamp {
    /// UTC RFC 3339 with milliseconds.
    static func nowRFC3339() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 32)
        strftime(&buf, 32, "%Y-%m-%dT%H:%M:%S", &tmv)
        let ms = ts.tv_nsec / 1_000_000
        let msStr = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return stringFromCBuffer(buf) + ".\(msStr)Z"
    }
}

/// `s` in double quotes with `"`, `\\`, newline, return and tab escaped
/// C-style; `other` escapes any further scalar it returns text for.
func doubleQuoted(_ s: String, other: (Unicode.Scalar) -> String?) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if let e = other(c) { out += e } else { out.unicodeScalars.append(c) }
        }
    }
    return out + "\""
}
