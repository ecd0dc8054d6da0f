/// Which node owns a digest: rendezvous (highest random weight) hashing
/// over the configured nodes, so every node computes the same owner
/// without talking, and adding or removing a node moves only the digests
/// it owns.
struct PeerRing: Sendable {
    let me: String
    let nodes: [String]

    init?(_ config: ClusterConfig) {
        guard let me = config.me, config.peers.count > 1 else { return nil }
        self.me = me
        nodes = config.peers
    }

    init(me: String, nodes: [String]) {
        self.me = me
        self.nodes = nodes
    }

    func owner(of d: Digest) -> String {
        var best = nodes[0], bestScore: UInt64 = 0
        for n in nodes {
            let s = PeerRing.score(n, d.hex)
            if s > bestScore || (s == bestScore && n < best) {
                best = n
                bestScore = s
            }
        }
        return best
    }

    /// FNV-1a over "node|digest", finished with splitmix64's mixer so that
    /// nearby inputs spread over the whole range.
    static func score(_ node: String, _ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in node.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        h = (h ^ UInt64(UInt8(ascii: "|"))) &* 0x100_0000_01b3
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        h ^= h >> 30
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27
        h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }
}
