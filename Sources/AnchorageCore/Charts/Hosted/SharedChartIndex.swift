import Foundation

/// A hosted chart repository kept in the shared bucket, so that every node
/// serves what any node took:
///
///     hosted/charts/<repo>/index.json             every version's entry (one object)
///     hosted/charts/<repo>/archives/<hex>.tgz     packages, by their SHA-256
///     hosted/charts/<repo>/prov/<chart>/<version>  provenance files
///
/// The index object is replaced with `If-Match` on the ETag it was read
/// with (`If-None-Match: *` when there is none yet), so two nodes changing
/// the repository at once never lose each other's change: the loser reads
/// again and re-applies its own. A node asks whether the index changed with
/// a conditional GET (`If-None-Match`), which costs a 304 when it did not.
struct SharedChartIndex: Sendable {
    let store: ObjectStoreTier
    let repository: String

    /// chart → version → entry (the JSON object ChartMuseum's API returns).
    typealias Entries = [String: [String: [String: Any]]]

    private var indexKey: String { "hosted/charts/\(repository)/index.json" }
    func archiveKey(_ d: Digest) -> String { "hosted/charts/\(repository)/archives/\(d.hex).tgz" }
    func provenanceKey(_ chart: String, _ version: String) -> String { "hosted/charts/\(repository)/prov/\(chart)/\(version)" }

    enum Fetched {
        case unchanged
        case changed(Entries, etag: String?)
    }

    /// The index, unless it is still the version `known`.
    func fetch(known: String?) -> Result<Fetched, StoreUnavailable> {
        let headers = known.map { [("If-None-Match", $0)] } ?? []
        return store.send("GET", key: indexKey, headers: headers, limit: 64 << 20).map { head, body in
            switch head.status {
            case 304: return .unchanged
            case 200: return .changed(SharedChartIndex.parse(body), etag: head.headers["ETag"])
            default: return .changed([:], etag: nil)
            }
        }
    }

    enum Change {
        case apply
        /// Leave the index as it is and tell the caller why.
        case refuse(HostedChartRepository.SaveError)
    }

    /// Reads the index, lets `change` edit it, and writes it back only over
    /// the version read; on a conflict, reads again and repeats.
    func update(_ change: (inout Entries) -> Change) -> Result<(Entries, etag: String?), HostedChartRepository.SaveError> {
        for _ in 0..<16 {
            let current: (bytes: [UInt8], info: ObjectInfo)?
            switch store.get(indexKey, limit: 64 << 20) {
            case .failure(let e): return .failure(.storage("object store unavailable: \(e)"))
            case .success(let c): current = c
            }
            var entries = current.map { SharedChartIndex.parse($0.bytes) } ?? [:]
            if case .refuse(let why) = change(&entries) { return .failure(why) }
            let body = SharedChartIndex.encode(entries)
            let condition = current.map { WriteCondition.matching($0.info.etag) } ?? .absent
            // Sent directly (not `put`): the new ETag is in the answer.
            let headers = condition.headers + [("Content-Type", "application/json")]
            switch store.send("PUT", key: indexKey, headers: headers, payloadHash: Hasher.digest(body, .sha256).hex, body: UploadBody(bytes: body)) {
            case .failure(let e): return .failure(.storage("object store unavailable: \(e)"))
            case .success(let (head, _)) where head.status == 412: continue
            case .success(let (head, _)): return .success((entries, head.headers["ETag"]))
            }
        }
        return .failure(.storage("the chart index kept changing under this update; try again"))
    }

    /// Writes a package under its digest (signed with it: the store checks the bytes).
    func putArchive(_ d: Digest, _ bytes: [UInt8]) -> Result<Void, StoreUnavailable> {
        store.send("PUT", key: archiveKey(d), headers: [("Content-Type", "application/gzip")], payloadHash: d.hex, body: UploadBody(bytes: bytes)).map { _ in () }
    }

    /// A package, verified against its digest; nil when absent or wrong.
    func archive(_ d: Digest, limit: Int) -> [UInt8]? {
        guard case .success(let found?) = store.get(archiveKey(d), limit: limit), Hasher.digest(found.bytes, .sha256) == d else { return nil }
        return found.bytes
    }

    private static func parse(_ bytes: [UInt8]) -> Entries {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let entries = obj["entries"] as? [String: [String: [String: Any]]] else { return [:] }
        return entries
    }

    private static func encode(_ entries: Entries) -> [UInt8] {
        let obj: [String: Any] = ["apiVersion": "anchorage/v1", "entries": entries]
        return Array((try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data("{}".utf8))
    }
}
