import COpenSSL

/// Incremental SHA-256/SHA-512 through OpenSSL's EVP interface (uses SHA-NI
/// where the CPU has it). One `update` per received chunk, no per-byte Swift.
public final class Hasher {
    private let ctx: OpaquePointer
    public let algorithm: Digest.Algorithm

    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        ctx = EVP_MD_CTX_new()
        EVP_DigestInit_ex(ctx, algorithm == .sha256 ? EVP_sha256() : EVP_sha512(), nil)
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finish() -> Digest {
        var out = [UInt8](repeating: 0, count: 64)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(ctx, &out, &len)
        return Digest(algorithm: algorithm, hex: hexString(out.prefix(Int(len))))
    }

    public static func digest(_ bytes: [UInt8], _ algorithm: Digest.Algorithm = .sha256) -> Digest {
        let h = Hasher(algorithm)
        h.update(bytes)
        return h.finish()
    }
}

func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
