/// bcrypt (Provos & Mazières, 1999) as htpasswd -B writes it: `$2y$`, `$2b$`
/// or `$2a$`, a two-digit cost, 22 characters of salt and 31 of hash in
/// bcrypt's base64. Own implementation on Blowfish (`BlowfishConstants`),
/// checked against the published test vectors and real htpasswd output.
public enum Bcrypt {
    static let alphabet = Array("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// True when `password` hashes to `hash`. Malformed hashes never match.
    public static func verify(_ password: String, hash: String) -> Bool {
        let h = Array(hash.utf8)
        guard h.count == 60, h[0] == 36, h[1] == 50, [97, 98, 121].contains(h[2]), h[3] == 36, h[6] == 36,
              let tens = digit(h[4]), let ones = digit(h[5]) else { return false }
        let cost = tens * 10 + ones
        guard (4...31).contains(cost), let salt = decode(Array(h[7..<29]), count: 16) else { return false }
        let computed = hashBytes(Array(password.utf8), cost: cost, salt: salt)
        guard let expected = decode(Array(h[29..<60]), count: 23) else { return false }
        // Constant-time comparison.
        var diff: UInt8 = 0
        for i in 0..<23 { diff |= computed[i] ^ expected[i] }
        return diff == 0
    }

    private static func digit(_ c: UInt8) -> Int? { c >= 48 && c <= 57 ? Int(c - 48) : nil }

    /// The 23 raw hash bytes.
    static func hashBytes(_ password: [UInt8], cost: Int, salt: [UInt8]) -> [UInt8] {
        var key = password + [0]
        if key.count > 72 { key = Array(key[0..<72]) }
        var bf = Blowfish()
        bf.expandKey(key, salt: salt)
        for _ in 0..<(1 << cost) {
            bf.expandKey(key, salt: nil)
            bf.expandKey(salt, salt: nil)
        }
        // "OrpheanBeholderScryDoubt", encrypted 64 times.
        var c: [UInt32] = [0x4F72_7068, 0x6561_6E42, 0x6568_6F6C, 0x6465_7253, 0x6372_7944, 0x6F75_6274]
        for _ in 0..<64 {
            for i in stride(from: 0, to: 6, by: 2) {
                var l = c[i], r = c[i + 1]
                bf.encrypt(&l, &r)
                c[i] = l
                c[i + 1] = r
            }
        }
        var out: [UInt8] = []
        for w in c { out += [UInt8(w >> 24), UInt8(w >> 16 & 0xff), UInt8(w >> 8 & 0xff), UInt8(w & 0xff)] }
        return Array(out[0..<23])
    }

    /// bcrypt's base64 (no padding) into `count` bytes.
    static func decode(_ chars: [UInt8], count: Int) -> [UInt8]? {
        var values: [UInt8] = []
        for c in chars {
            guard let i = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt8(i))
        }
        var out: [UInt8] = []
        var i = 0
        while out.count < count, i + 1 < values.count {
            let (a, b) = (values[i], values[i + 1])
            out.append(a << 2 | b >> 4)
            if out.count == count || i + 2 >= values.count { break }
            let c = values[i + 2]
            out.append((b & 0x0f) << 4 | c >> 2)
            if out.count == count || i + 3 >= values.count { break }
            let d = values[i + 3]
            out.append((c & 0x03) << 6 | d)
            i += 4
        }
        return out.count == count ? out : nil
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            if i + 1 < bytes.count { out.append(alphabet[Int((b1 & 0x0f) << 2 | b2 >> 6)]) }
            if i + 2 < bytes.count { out.append(alphabet[Int(b2 & 0x3f)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Blowfish with the "expensive key schedule" step bcrypt needs.
struct Blowfish {
    var p: [UInt32] = BlowfishConstants.p
    var s: [UInt32] = BlowfishConstants.s

    @inline(__always)
    private func f(_ x: UInt32) -> UInt32 {
        s.withUnsafeBufferPointer { s in
            ((s[Int(x >> 24)] &+ s[256 + Int(x >> 16 & 0xff)]) ^ s[512 + Int(x >> 8 & 0xff)]) &+ s[768 + Int(x & 0xff)]
        }
    }

    mutating func encrypt(_ l: inout UInt32, _ r: inout UInt32) {
        var xl = l, xr = r
        for i in stride(from: 0, to: 16, by: 2) {
            xl ^= p[i]
            xr ^= f(xl)
            xr ^= p[i + 1]
            xl ^= f(xr)
        }
        xl ^= p[16]
        xr ^= p[17]
        l = xr
        r = xl
    }

    private static func word(_ data: [UInt8], _ j: inout Int) -> UInt32 {
        var w: UInt32 = 0
        for _ in 0..<4 {
            w = w << 8 | UInt32(data[j])
            j = (j + 1) % data.count
        }
        return w
    }

    mutating func expandKey(_ key: [UInt8], salt: [UInt8]?) {
        var j = 0
        for i in 0..<18 { p[i] ^= Blowfish.word(key, &j) }
        var l: UInt32 = 0, r: UInt32 = 0
        var k = 0
        for i in stride(from: 0, to: 18, by: 2) {
            if let salt {
                l ^= Blowfish.word(salt, &k)
                r ^= Blowfish.word(salt, &k)
            }
            encrypt(&l, &r)
            p[i] = l
            p[i + 1] = r
        }
        for i in stride(from: 0, to: 1024, by: 2) {
            if let salt {
                l ^= Blowfish.word(salt, &k)
                r ^= Blowfish.word(salt, &k)
            }
            encrypt(&l, &r)
            s[i] = l
            s[i + 1] = r
        }
    }
}
