import Foundation

/// Streams a blob from the node that owns its digest, so that a cluster
/// makes one upstream fetch per blob: the owner fetches (or already has)
/// it and every other node reads from the owner while it ingests, each
/// verifying the bytes on its way into its own disk as from an upstream.
final class PeerFetcher: Sendable {
    let ring: PeerRing
    private let client = CurlClient()
    private let options: TransferOptions
    let counters: Counters
    /// Marks a request from another node: its owner never forwards it again,
    /// whatever its own peer list says, so two nodes cannot loop.
    static let header = "X-Anchorage-Peer"

    init(ring: PeerRing, counters: Counters) {
        self.ring = ring
        self.counters = counters
        var o = TransferOptions()
        // A node that is down is noticed at once and its share fetched locally.
        o.connectTimeoutMillis = 2_000
        options = o
    }

    enum Lookup {
        /// The owner answered 200: the transfer's outcome (the sink got the body).
        case found(Result<ResponseHead, UpstreamError>)
        /// This node owns the digest, or the owner could not serve it.
        case notThere
    }

    /// `path` is the registry path on the owner (with `?ns=`), `headers`
    /// what the client sent that the owner needs too (Authorization).
    func fetch(_ d: Digest, path: String, headers: [String], into sink: TransferSink) -> Lookup {
        let owner = ring.owner(of: d)
        guard owner != ring.me else { return .notThere }
        let gate = OnlySuccessSink(sink)
        let result = client.perform(method: "GET", url: owner + path, headers: headers + ["\(PeerFetcher.header): \(ring.me)"], options: options, sink: gate)
        if gate.status == 200 {
            counters.peerFetches.add(1, ordering: .relaxed)
            return .found(result)
        }
        let why: String
        switch result {
        case .failure(let e): why = "\(e)"
        case .success(let head): why = "HTTP \(head.status)"
        }
        Log.warn("owner node did not serve the blob; fetching it here", ["owner": owner, "digest": d.description, "error": why])
        return .notThere
    }
}
