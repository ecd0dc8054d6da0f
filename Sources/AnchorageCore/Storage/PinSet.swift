import Foundation
import Glibc

/// Digests that eviction must never remove: what `[sync]` rules fetched and
/// images pinned from the console. One file per rule or pinned image under
/// `<root>/pins/` (digests, one per line, written
/// atomically), so a sync can replace one rule's set, drop the sets of rules
/// that left the config, and the daemon sees changes by the directory's mtime.
enum PinSet {
    static func directory(_ layout: CacheLayout) -> String { layout.pinsDir }

    /// A file name for a rule: a hash of its text, safe in any filesystem.
    static func key(forRule text: String) -> String { String(Hasher.digest(Array(text.utf8)).hex.prefix(24)) }

    static func write(_ layout: CacheLayout, key: String, rule: String, digests: Set<Digest>) {
        var text = "# \(rule.replacingOccurrences(of: "\n", with: " "))\n"
        for d in digests.map(\.description).sorted() { text += d + "\n" }
        _ = writeFileAtomically("\(directory(layout))/\(key)", Array(text.utf8))
    }

    /// Pins made by hand (the console) are named apart from rules' and
    /// outlive every sync.
    static let handPrefix = "console-"

    /// The key of a hand-made pin of one image.
    static func key(forImage image: String) -> String { handPrefix + key(forRule: image) }

    static func remove(_ layout: CacheLayout, key: String) -> Bool { unlink("\(directory(layout))/\(key)") == 0 }

    static func exists(_ layout: CacheLayout, key: String) -> Bool { access("\(directory(layout))/\(key)", F_OK) == 0 }

    /// Removes the sets of rules not in `keep` (hand-made pins stay).
    static func prune(_ layout: CacheLayout, keep: Set<String>) -> Int {
        var removed = 0
        for f in (try? FileManager.default.contentsOfDirectory(atPath: directory(layout))) ?? []
        where !keep.contains(f) && !f.contains(".tmp-") && !f.hasPrefix(handPrefix) {
            if unlink("\(directory(layout))/\(f)") == 0 { removed += 1 }
        }
        return removed
    }

    static func load(_ layout: CacheLayout) -> Set<Digest> {
        var out = Set<Digest>()
        for f in (try? FileManager.default.contentsOfDirectory(atPath: directory(layout))) ?? [] where !f.contains(".tmp-") {
            guard let text = try? String(contentsOfFile: "\(directory(layout))/\(f)", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                if let d = Digest(line) { out.insert(d) }
            }
        }
        return out
    }

    /// The directory's mtime (ns), to notice changes cheaply.
    static func signature(_ layout: CacheLayout) -> Int64 {
        var st = stat()
        guard stat(directory(layout), &st) == 0 else { return 0 }
        return Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }
}
