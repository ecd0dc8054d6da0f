import Foundation
import Glibc
import Synchronization

/// Pins made from the console, shared through the bucket so that an image
/// pinned on one node is held on every node (`pins/<key>` in the bucket,
/// the same text as the local pin file). Each node publishes its own
/// console pins and unpins, and every few seconds makes its local console
/// pins match the bucket's: a pin it has not seen is written locally, one
/// the bucket no longer has (unpinned on another node) is removed. Pins of
/// `[sync]` rules stay per node: every node runs its own rules.
final class SharedPins: Sendable {
    let store: ObjectStoreTier
    let layout: CacheLayout
    let index: CacheIndex
    /// Per key, the ETag of the bucket's object this node's file matches.
    private let seen = Mutex<[String: String]>([:])
    static let prefix = "pins/"
    static let intervalSeconds: UInt32 = 5

    init(store: ObjectStoreTier, layout: CacheLayout, index: CacheIndex) {
        self.store = store
        self.layout = layout
        self.index = index
    }

    private var dir: String { PinSet.directory(layout) }

    /// Writes a console pin made here into the bucket.
    func publish(_ key: String) {
        guard let bytes = FileManager.default.contents(atPath: "\(dir)/\(key)").map(Array.init) else { return }
        _ = store.put(SharedPins.prefix + key, bytes)
        remember(key)
    }

    /// Removes a console pin from the bucket (unpinned here).
    func withdraw(_ key: String) {
        store.delete(SharedPins.prefix + key)
        _ = seen.withLock { $0.removeValue(forKey: key) }
    }

    private func remember(_ key: String) {
        if case .success(let info?) = store.head(SharedPins.prefix + key) { seen.withLock { $0[key] = info.etag } }
    }

    /// Makes this node's console pins match the bucket's; true when a local
    /// pin changed. Nothing changes when the bucket cannot be listed.
    @discardableResult
    func pull() -> Bool {
        guard case .success(let listing) = store.list(SharedPins.prefix, delimited: true) else { return false }
        let remote = Dictionary(listing.objects.map { (String($0.key.dropFirst(SharedPins.prefix.count)), $0.etag) }, uniquingKeysWith: { a, _ in a })
        var changed = false
        for (key, etag) in remote where key.hasPrefix(PinSet.handPrefix) && SharedPins.isSafe(key) && seen.withLock({ $0[key] }) != etag {
            guard case .success(let found?) = store.get(SharedPins.prefix + key, limit: 16 << 20) else { continue }
            makeParentDirectory("\(dir)/\(key)")
            if writeFileAtomically("\(dir)/\(key)", found.bytes) {
                seen.withLock { $0[key] = found.info.etag }
                changed = true
            }
        }
        let local = listDirectory(dir).filter { $0.hasPrefix(PinSet.handPrefix) && !$0.contains(".tmp-") }
        for key in local where remote[key] == nil {
            if seen.withLock({ $0[key] }) != nil {
                // It was in the bucket and is gone: unpinned on another node.
                _ = PinSet.remove(layout, key: key)
                _ = seen.withLock { $0.removeValue(forKey: key) }
                changed = true
            } else {
                // Pinned here before the bucket knew it.
                publish(key)
            }
        }
        if changed { index.refreshPins() }
        return changed
    }

    func start() {
        detachThread(name: "anchorage-shared-pins") { [self] in
            while true {
                pull()
                sleep(SharedPins.intervalSeconds)
            }
        }
    }

    /// A key as this node writes them: `console-` and hex.
    private static func isSafe(_ key: String) -> Bool {
        key.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 } && key.count <= 64
    }
}
