import Foundation

/// `[cluster]`: the nodes that share one object store and split the
/// upstream fetches between them. Each digest has one owner among
/// `peers`; the others stream a blob from the owner while it fetches.
public struct ClusterConfig: Sendable {
    /// This node's URL as the others reach it; nil without a cluster.
    public var me: String?
    /// Every node's URL, this one included, in the order written.
    public var peers: [String]

    static let schema = SectionSchema(kind: "cluster", named: false, keys: [
        ConfigKey("self", .url, help: "this node's URL as the other nodes reach it, e.g. http://10.0.0.11:5000 (default: $ANCHORAGE_CLUSTER_SELF)"),
        ConfigKey("peers", .string, help: "every node's URL, this one included, comma-separated: each blob is fetched from the upstream by one of them for all"),
    ])

    static let none = ClusterConfig(me: nil, peers: [])

    init(me: String?, peers: [String]) {
        self.me = me
        self.peers = peers
    }

    init(_ r: SectionReader, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) {
        // One config for every replica (a Kubernetes StatefulSet): each
        // node's own URL may come from its environment instead.
        let given = r.string("self") ?? environment["ANCHORAGE_CLUSTER_SELF"].flatMap { $0.isEmpty ? nil : $0 }
        let list = (r.string("peers") ?? "").split(separator: ",").map { ClusterConfig.normalized($0.trimmed(" \t")) }.filter { !$0.isEmpty }
        guard !list.isEmpty else {
            me = given.map(ClusterConfig.normalized)
            peers = []
            return
        }
        guard let me = given.map(ClusterConfig.normalized) else {
            throw r.error("peers", "[cluster] peers needs 'self' (or $ANCHORAGE_CLUSTER_SELF): this node's URL as the others reach it")
        }
        for p in list where !(p.hasPrefix("http://") || p.hasPrefix("https://")) {
            throw r.error("peers", "peer '\(p)' is not an http:// or https:// URL")
        }
        guard list.contains(me) else {
            throw r.error("self", "self = \(me) is not one of peers (\(list.joined(separator: ", "))): every node must list the same peers, itself included")
        }
        guard Set(list).count == list.count else { throw r.error("peers", "a peer is listed twice") }
        self.me = me
        peers = list
    }

    static func normalized(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    func render() -> [(String, String)] {
        guard let me, !peers.isEmpty else { return [] }
        return [("self", me), ("peers", peers.joined(separator: ", "))]
    }
}
