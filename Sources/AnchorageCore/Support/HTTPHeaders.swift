/// An ordered list of header fields with case-insensitive lookup (RFC 9110 §5.1).
/// Kept as an array: requests carry ~10 fields, where a linear scan beats hashing.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}
    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public subscript(name: String) -> String? {
        for f in fields where f.name.caseInsensitiveEquals(name) { return f.value }
        return nil
    }

    public func all(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }

    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces every field of that name with one.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        fields.append((name: name, value: value))
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.caseInsensitiveEquals(name) }
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public var count: Int { fields.count }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }
}

extension String {
    /// ASCII case-insensitive comparison without allocating lowercased copies.
    @inlinable
    func caseInsensitiveEquals(_ other: String) -> Bool {
        // Field names are short ASCII: unequal lengths (O(1) on native
        // strings) settle most comparisons, the rest go byte by byte.
        guard utf8.count == other.utf8.count else { return false }
        if let same = utf8.withContiguousStorageIfAvailable({ a in
            other.utf8.withContiguousStorageIfAvailable { b in
                for i in 0..<a.count {
                    var x = a[i], y = b[i]
                    if x >= 65 && x <= 90 { x += 32 }
                    if y >= 65 && y <= 90 { y += 32 }
                    if x != y { return false }
                }
                return true
            }
        }), let same { return same }
        var a = self.utf8.makeIterator()
        var b = other.utf8.makeIterator()
        while true {
            let x = a.next(), y = b.next()
            if x == nil && y == nil { return true }
            guard var cx = x, var cy = y else { return false }
            if cx >= 65 && cx <= 90 { cx += 32 }
            if cy >= 65 && cy <= 90 { cy += 32 }
            if cx != cy { return false }
        }
    }
}
