/// One part of a `multipart/form-data` body (RFC 7578): its field name, the
/// file name a client gave, and its bytes.
struct MultipartPart {
    let name: String
    let fileName: String?
    let body: [UInt8]
}

/// Parses a whole `multipart/form-data` body held in memory (uploads of
/// chart packages, which are small). Pure.
enum Multipart {
    /// The boundary of a `multipart/form-data` Content-Type, if it is one.
    static func boundary(_ contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.trimmed(" \t")
            guard kv.lowercased().hasPrefix("boundary=") else { continue }
            var b = kv.dropFirst(9)
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = b.dropFirst().dropLast() }
            return b.isEmpty || b.count > 200 ? nil : String(b)
        }
        return nil
    }

    /// The parts, or nil when the body does not follow the format.
    static func parse(_ body: [UInt8], boundary: String) -> [MultipartPart]? {
        let delimiter = Array("--\(boundary)".utf8)
        guard var at = find(delimiter, in: body, from: 0) else { return nil }
        var parts: [MultipartPart] = []
        while true {
            at += delimiter.count
            if body.count >= at + 2, body[at] == 45, body[at + 1] == 45 { return parts }   // "--": the end
            guard body.count >= at + 2, body[at] == 13, body[at + 1] == 10 else { return nil }
            at += 2
            guard let headEnd = find(Array("\r\n\r\n".utf8), in: body, from: at) else { return nil }
            let head = String(decoding: body[at..<headEnd], as: UTF8.self)
            let start = headEnd + 4
            guard let next = find(Array("\r\n".utf8) + delimiter, in: body, from: start) else { return nil }
            var name: String?, fileName: String?
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                name = parameter("name", line)
                fileName = parameter("filename", line)
            }
            guard let name else { return nil }
            parts.append(MultipartPart(name: name, fileName: fileName, body: Array(body[start..<next])))
            at = next + 2
        }
    }

    /// A quoted or plain parameter of a header line.
    private static func parameter(_ key: String, _ line: Substring) -> String? {
        for p in line.split(separator: ";").dropFirst() {
            let kv = p.trimmed(" \t")
            guard kv.hasPrefix("\(key)=") else { continue }
            var v = kv.dropFirst(key.count + 1)
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
            // A path in a file name is never used: only its last component.
            return String(v.split(separator: "/").last ?? v)
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count, from <= hay.count - needle.count else { return nil }
        let first = needle[0]
        var i = from
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first, hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
