/// A single byte range from a `Range` header (RFC 9110 §14.1.2), resolved
/// against a representation length.
public enum ByteRangeRequest: Equatable, Sendable {
    /// No usable Range header: send the whole representation (200).
    case none
    /// One satisfiable range: send 206 with these bounds (inclusive start, count).
    case satisfiable(start: Int64, count: Int64)
    /// A well-formed range outside the representation: 416.
    case unsatisfiable

    /// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n`. Multiple ranges and
    /// other units are answered with the whole body, which the RFC allows
    /// (a server MAY ignore Range) and which every registry client handles.
    public static func parse(_ header: String?, length: Int64) -> ByteRangeRequest {
        guard let header else { return .none }
        let h = header.trimmed(" \t")
        guard h.lowercased().hasPrefix("bytes=") else { return .none }
        let spec = h.dropFirst(6).trimmed(" \t")
        if spec.utf8.contains(UInt8(ascii: ",")) { return .none }
        guard let dash = spec.firstIndex(of: "-") else { return .none }
        let first = spec[..<dash].trimmed(" \t"), last = spec[spec.index(after: dash)...].trimmed(" \t")
        func number(_ s: String) -> Int64? {
            guard !s.isEmpty, s.utf8.count <= 18, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int64(s)
        }
        if first.isEmpty {
            guard let suffix = number(last) else { return .none }
            if suffix == 0 || length == 0 { return .unsatisfiable }
            let n = min(suffix, length)
            return .satisfiable(start: length - n, count: n)
        }
        guard let start = number(first) else { return .none }
        let end: Int64
        if last.isEmpty {
            end = length - 1
        } else {
            guard let e = number(last) else { return .none }
            guard e >= start else { return .none }   // invalid: ignore the header
            end = min(e, length - 1)
        }
        guard start < length else { return .unsatisfiable }
        return .satisfiable(start: start, count: end - start + 1)
    }
}

/// Conditional request evaluation (RFC 9110 §13) for the validators the
/// mirror emits: strong ETags built from content digests.
public enum ConditionalRequest {
    /// True when `If-None-Match` lists the entity tag (or `*`): answer 304.
    public static func noneMatch(_ header: String?, etag: String) -> Bool {
        guard let header else { return false }
        for raw in header.split(separator: ",") {
            var t = raw.trimmed(" \t")
            if t == "*" { return true }
            if t.hasPrefix("W/") { t.removeFirst(2) }   // weak comparison for GET
            if t == etag { return true }
        }
        return false
    }

    /// `If-Range` holds: the Range may be applied. Only strong ETags qualify.
    public static func ifRangeHolds(_ header: String?, etag: String?) -> Bool {
        guard let header else { return true }
        guard let etag else { return false }
        return header.trimmed(" \t") == etag
    }
}
