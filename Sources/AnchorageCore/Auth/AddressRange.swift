import Glibc

/// A CIDR block (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`) matched against a
/// client's raw address bytes.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefix: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addr = parts.first else { return nil }
        var bytes: [UInt8]
        if addr.utf8.contains(UInt8(ascii: ":")) {
            var a = in6_addr()
            guard inet_pton(AF_INET6, String(addr), &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        } else {
            var a = in_addr()
            guard addr.split(separator: ".").count == 4, inet_pton(AF_INET, String(addr), &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        }
        let maxPrefix = bytes.count * 8
        var prefix = maxPrefix
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxPrefix).contains(p) else { return nil }
            prefix = p
        }
        // Clear host bits so matching compares networks.
        for i in 0..<bytes.count {
            let keep = max(0, min(8, prefix - i * 8))
            bytes[i] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        network = bytes
        self.prefix = prefix
        description = text
    }

    public func contains(_ peer: PeerAddress) -> Bool {
        var addr = peer.bytes
        // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 ranges.
        if network.count == 4, addr.count == 16, addr[0..<10].allSatisfy({ $0 == 0 }), addr[10] == 0xff, addr[11] == 0xff {
            addr = Array(addr[12..<16])
        }
        guard addr.count == network.count else { return false }
        for i in 0..<addr.count {
            let keep = max(0, min(8, prefix - i * 8))
            let mask: UInt8 = keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
            if addr[i] & mask != network[i] { return false }
        }
        return true
    }
}
