/// Semantic Versioning 2.0.0 precedence (§11), lenient as Helm is: a leading
/// `v` and missing minor/patch are accepted. Versions that do not parse sort
/// before all that do, then by plain string order.
public struct SemanticVersion: Comparable, Sendable, CustomStringConvertible {
    public let major: Int, minor: Int, patch: Int
    public let prerelease: [String]
    public let description: String

    public init?(_ s: String) {
        var t = Substring(s)
        if t.hasPrefix("v") || t.hasPrefix("V") { t = t.dropFirst() }
        if let plus = t.firstIndex(of: "+") { t = t[..<plus] }
        var pre: [String] = []
        if let dash = t.firstIndex(of: "-") {
            pre = t[t.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !pre.contains(where: \.isEmpty) else { return nil }
            t = t[..<dash]
        }
        let nums = t.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(nums.count), nums.allSatisfy({ !$0.isEmpty && $0.count < 10 && $0.allSatisfy(\.isNumber) }) else { return nil }
        major = Int(nums[0]) ?? 0
        minor = nums.count > 1 ? Int(nums[1]) ?? 0 : 0
        patch = nums.count > 2 ? Int(nums[2]) ?? 0 : 0
        prerelease = pre
        description = s
    }

    public static func < (a: SemanticVersion, b: SemanticVersion) -> Bool {
        if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch) {
            return (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
        }
        // A pre-release precedes the release.
        if a.prerelease.isEmpty != b.prerelease.isEmpty { return !a.prerelease.isEmpty }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            switch (Int(x), Int(y)) {
            case let (i?, j?): return i < j
            case (_?, nil): return true
            case (nil, _?): return false
            default: return x < y
            }
        }
        return a.prerelease.count < b.prerelease.count
    }

    public static func == (a: SemanticVersion, b: SemanticVersion) -> Bool { !(a < b) && !(b < a) }

    /// Whether version string `a` sorts before `b`.
    public static func precedes(_ a: String, _ b: String) -> Bool {
        switch (SemanticVersion(a), SemanticVersion(b)) {
        case let (x?, y?): return x < y
        case (nil, _?): return true
        case (_?, nil): return false
        default: return a < b
        }
    }
}
