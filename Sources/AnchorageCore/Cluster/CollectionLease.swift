import Foundation

/// Which node collects hosted garbage now, when several share a bucket: a
/// small object naming the holder and when its hold ends, taken with a
/// conditional write (`If-None-Match: *` when absent, `If-Match` over an
/// expired one), so two nodes never sweep at once. A holder that dies
/// leaves a lease that expires on its own.
struct CollectionLease {
    let store: ObjectStoreTier
    let holder: String
    static let key = "hosted/collection-lease"
    static let millis: Int64 = 60 * 60 * 1000

    init(store: ObjectStoreTier, holder: String = CollectionLease.thisProcess) {
        self.store = store
        self.holder = holder
    }

    static var thisProcess: String { "\(ProcessInfo.processInfo.hostName):\(getpid())" }

    enum Outcome: Equatable {
        case taken
        /// Another node holds it (who, until when) or the store did not answer.
        case refused(String)
    }

    func acquire(now: Int64 = CacheIndex.nowMillis()) -> Outcome {
        let body = Array("\(holder)\n\(now + CollectionLease.millis)\n".utf8)
        let condition: WriteCondition
        switch store.get(CollectionLease.key) {
        case .failure(let e): return .refused("object store unavailable: \(e)")
        case .success(nil): condition = .absent
        case .success(let found?):
            let lines = String(decoding: found.bytes, as: UTF8.self).split(separator: "\n")
            let until = lines.count > 1 ? Int64(lines[1]) ?? 0 : 0
            if until > now && lines.first.map(String.init) != holder {
                return .refused("\(lines.first ?? "another node") is collecting (lease until \(Date(timeIntervalSince1970: Double(until) / 1000)))")
            }
            condition = .matching(found.info.etag)
        }
        switch store.put(CollectionLease.key, body, condition: condition) {
        case .failure(let e): return .refused("object store unavailable: \(e)")
        case .success(true): return .taken
        case .success(false): return .refused("another node took the collection lease first")
        }
    }

    /// Gives the lease up if this holder still has it.
    func release() {
        guard case .success(let found?) = store.get(CollectionLease.key),
              String(decoding: found.bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) == holder else { return }
        store.delete(CollectionLease.key)
    }
}
