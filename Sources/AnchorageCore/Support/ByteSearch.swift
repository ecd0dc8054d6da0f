/// Byte-wise substring search on UTF-8. With Foundation imported,
/// `contains(_:)` and `range(of:)` on strings go through NSString and
/// Unicode-aware comparison, which showed up as a fifth of the CPU of a
/// manifest hit. Request paths are compared byte-exact anyway.
extension StringProtocol {
    /// Calls `body` with the text's UTF-8 bytes: in place when they are
    /// contiguous (native strings), else from a copy.
    func withUTF8Bytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        utf8.withContiguousStorageIfAvailable(body) ?? Array(utf8).withUnsafeBufferPointer(body)
    }

    /// The range of the last occurrence of `needle`, compared byte for byte.
    func lastRange(ofBytes needle: StaticString) -> Range<Index>? {
        let u = utf8
        let hit: Int? = withUTF8Bytes { hay in needle.withUTF8Buffer { n in ByteSearch.last(n, in: hay) } }
        guard let offset = hit else { return nil }
        let lower = u.index(u.startIndex, offsetBy: offset)
        return lower..<u.index(lower, offsetBy: needle.utf8CodeUnitCount)
    }

    /// Whether `needle` occurs, compared byte for byte.
    func containsBytes(_ needle: StaticString) -> Bool {
        lastRange(ofBytes: needle) != nil
    }
}

enum ByteSearch {
    /// Offset of the last occurrence of `needle` in `hay`, or nil.
    static func last(_ needle: UnsafeBufferPointer<UInt8>, in hay: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = needle.count
        guard n > 0, hay.count >= n else { return n == 0 ? hay.count : nil }
        var i = hay.count - n
        let first = needle[0]
        while i >= 0 {
            if hay[i] == first {
                var j = 1
                while j < n && hay[i + j] == needle[j] { j += 1 }
                if j == n { return i }
            }
            i -= 1
        }
        return nil
    }
}
