import CZlib

/// gzip (RFC 1952) through zlib, for compressing index.yaml once per refresh.
enum Gzip {
    static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8]? {
        var stream = z_stream()
        guard anch_deflate_init_gzip(&stream, level) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        let rc: Int32 = input.withUnsafeBytes { inp in
            out.withUnsafeMutableBytes { outp in
                stream.next_in = UnsafeMutablePointer(mutating: inp.bindMemory(to: Bytef.self).baseAddress)
                stream.avail_in = uInt(inp.count)
                stream.next_out = outp.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = uInt(outp.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard rc == Z_STREAM_END else { return nil }
        out.removeLast(out.count - Int(stream.total_out))
        return out
    }

    /// Inflates gzip data, handing the output to `body` in pieces until it
    /// returns false; nil when the data is not valid gzip or more than
    /// `limit` bytes come out (a compression bomb), else whether `body`
    /// stopped it.
    static func decompress(_ input: [UInt8], limit: Int, _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool? {
        var stream = z_stream()
        guard anch_inflate_init_auto(&stream) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: 64 * 1024)
        var produced = 0
        return input.withUnsafeBytes { inp -> Bool? in
            stream.next_in = UnsafeMutablePointer(mutating: inp.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(inp.count)
            while true {
                let (rc, n) = out.withUnsafeMutableBytes { outp -> (Int32, Int) in
                    stream.next_out = outp.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(outp.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    return (rc, outp.count - Int(stream.avail_out))
                }
                guard rc == Z_OK || rc == Z_STREAM_END else { return nil }
                produced += n
                guard produced <= limit else { return nil }
                if n > 0, !out.withUnsafeBytes({ body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) { return true }
                if rc == Z_STREAM_END { return false }
                if n == 0 && stream.avail_in == 0 { return nil }   // truncated
            }
        }
    }

    /// Whether an Accept-Encoding header accepts gzip (RFC 9110 §12.5.3).
    static func accepted(_ header: String?) -> Bool {
        guard let header else { return false }
        for part in header.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmed(" \t").lowercased() }
            guard let coding = fields.first, coding == "gzip" || coding == "x-gzip" || coding == "*" else { continue }
            let q = fields.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
        return false
    }
}
