/// A content digest, `sha256:<64 hex>` or `sha512:<128 hex>` (OCI image spec
/// §Digests, restricted to the registered algorithms). A `Digest` value can
/// only exist if it is valid, so it is safe to use in file paths.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable {
        case sha256, sha512
        var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    /// Lower-case hex.
    public let hex: String

    public init?(_ s: some StringProtocol) {
        // Checked on the bytes (every manifest hit parses one); text that is
        // not contiguous is copied first.
        guard let d = s.withUTF8Bytes(Digest.parse)
        else { return nil }
        self = d
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Digest? {
        guard let colon = b.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let name = UnsafeBufferPointer(rebasing: b[..<colon])
        let alg: Algorithm
        if name.elementsEqual("sha256".utf8) {
            alg = .sha256
        } else if name.elementsEqual("sha512".utf8) {
            alg = .sha512
        } else {
            return nil
        }
        let hex = UnsafeBufferPointer(rebasing: b[(colon + 1)...])
        guard hex.count == alg.hexLength,
              hex.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        return Digest(algorithm: alg, hex: String(decoding: hex, as: UTF8.self))
    }

    init(algorithm: Algorithm, hex: String) {
        self.algorithm = algorithm
        self.hex = hex
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }

    /// A strong entity tag for HTTP: the digest quoted.
    public var etag: String { "\"\(description)\"" }
}
