/// A repository name per the distribution spec: path components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 characters.
/// No component can be empty, `.` or `..`, so a name is safe as a path.
public struct RepositoryName: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init?(_ s: some StringProtocol) {
        guard !s.isEmpty, s.utf8.count <= 255 else { return nil }
        let ok: Bool? = s.utf8.withContiguousStorageIfAvailable { RepositoryName.isValid($0) }
        guard ok ?? RepositoryName.isValid(Array(s.utf8)) else { return nil }
        value = String(s)
    }

    public var components: [Substring] { value.split(separator: "/") }
    public var description: String { value }

    /// Every `/`-separated component valid (none empty).
    static func isValid<C: RandomAccessCollection>(_ b: C) -> Bool where C.Element == UInt8, C.Index == Int {
        var start = b.startIndex
        while true {
            let end = b[start...].firstIndex(of: 47) ?? b.endIndex
            guard isValidComponent(b[start..<end]) else { return false }
            if end == b.endIndex { return true }
            start = end + 1
        }
    }

    static func isValidComponent<C: RandomAccessCollection>(_ b: C) -> Bool where C.Element == UInt8, C.Index == Int {
        guard let first = b.first, let last = b.last, isAlnum(first), isAlnum(last) else { return false }
        var i = b.startIndex
        let end = b.endIndex
        while i < end {
            if isAlnum(b[i]) { i += 1; continue }
            // A separator run: ".", "_", "__" or one or more "-".
            let start = i
            if b[i] == 45 {
                while i < end, b[i] == 45 { i += 1 }
            } else if b[i] == 46 {
                i += 1
            } else if b[i] == 95 {
                i += 1
                if i < end, b[i] == 95 { i += 1 }
            } else {
                return false
            }
            guard i > start, i < end, isAlnum(b[i]) else { return false }
        }
        return true
    }

    private static func isAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
public struct Tag: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init?(_ s: some StringProtocol) {
        let b = Array(s.utf8)
        guard let first = b.first, b.count <= 128 else { return nil }
        func word(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 }
        guard word(first), b.dropFirst().allSatisfy({ word($0) || $0 == 46 || $0 == 45 }) else { return nil }
        value = String(s)
    }

    public var description: String { value }
}

/// What a manifest request names: a tag (mutable, revalidated) or a digest (immutable).
public enum Reference: Hashable, Sendable, CustomStringConvertible {
    case tag(Tag)
    case digest(Digest)

    public init?(_ s: some StringProtocol) {
        if s.utf8.contains(UInt8(ascii: ":")) {
            guard let d = Digest(s) else { return nil }
            self = .digest(d)
        } else {
            guard let t = Tag(s) else { return nil }
            self = .tag(t)
        }
    }

    public var description: String {
        switch self {
        case .tag(let t): t.value
        case .digest(let d): d.description
        }
    }
}
