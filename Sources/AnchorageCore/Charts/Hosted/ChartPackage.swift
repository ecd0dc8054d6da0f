import Foundation

/// An uploaded chart package (`NAME-VERSION.tgz`), checked the way Helm
/// loads one: gzip, then tar, with `<dir>/Chart.yaml` holding at least
/// `name` and `version`. Only `Chart.yaml` is read; nothing in the package
/// is executed or written out.
struct ChartPackage {
    let name: String
    let version: String
    /// Chart.yaml's fields, for the index entry (scalars as strings).
    let metadata: YAMLNode
    let digest: Digest

    static let maxArchiveBytes = 32 << 20
    static let maxUnpackedBytes = 128 << 20
    static let maxChartYamlBytes = 1 << 20

    enum Invalid: Error, CustomStringConvertible {
        case reason(String)
        var description: String { if case .reason(let r) = self { r } else { "" } }
    }

    /// `fileName` is the uploaded file's name when the client gave one: it
    /// must then be `NAME-VERSION.tgz` of the chart inside.
    static func read(_ archive: [UInt8], fileName: String?) -> Result<ChartPackage, Invalid> {
        guard archive.count <= maxArchiveBytes else { return .failure(.reason("chart package larger than \(maxArchiveBytes >> 20) MiB")) }
        // Streamed: only headers and Chart.yaml itself are ever held.
        var tar = TarScanner(limit: maxChartYamlBytes) { path in
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            return parts.count == 2 && parts[1] == "Chart.yaml"
        }
        let inflated = Gzip.decompress(archive, limit: maxUnpackedBytes) { tar.feed($0) }
        guard inflated != nil else { return .failure(.reason("not a gzip archive (or it unpacks to more than \(maxUnpackedBytes >> 20) MiB)")) }
        if let why = tar.failure { return .failure(.reason(why)) }
        guard let chartYaml = tar.found else {
            return .failure(.reason(tar.headers == 0 ? "not a tar archive" : "no Chart.yaml at the top of the chart directory"))
        }
        guard chartYaml.count <= maxChartYamlBytes, let text = String(bytes: chartYaml, encoding: .utf8) else {
            return .failure(.reason("Chart.yaml is not UTF-8 text of at most 1 MiB"))
        }
        let doc: YAMLNode
        do {
            doc = try YAMLParser.parse(text)
        } catch {
            return .failure(.reason("Chart.yaml: \(error)"))
        }
        guard let name = doc["name"]?.string, !name.isEmpty, let version = doc["version"]?.string, !version.isEmpty else {
            return .failure(.reason("Chart.yaml needs a name and a version"))
        }
        guard ChartIndex.isSafeComponent(name), !name.contains("+"), ChartIndex.isSafeComponent(version) else {
            return .failure(.reason("chart name or version has characters a file name cannot: \(name.prefix(100)) \(version.prefix(100))"))
        }
        guard SemanticVersion(version) != nil else { return .failure(.reason("version \(version) is not a semantic version")) }
        if let fileName, fileName != "\(name)-\(version).tgz" {
            return .failure(.reason("file name \(fileName.prefix(200)) does not match the chart's \(name)-\(version).tgz"))
        }
        return .success(ChartPackage(name: name, version: version, metadata: doc, digest: Hasher.digest(archive)))
    }
}

/// Reads ustar/pax/GNU tar headers as the bytes stream by, keeping only
/// the one file it looks for (at most `limit` bytes) and the current header.
struct TarScanner {
    let limit: Int
    let match: (String) -> Bool
    private enum State { case header, data(remaining: Int), padding(Int) }
    private var state = State.header
    private var header: [UInt8] = []
    private var entry: (type: UInt8, size: Int, keep: Bool, matched: Bool) = (0, 0, false, false)
    private var body: [UInt8] = []
    private var longName: String?
    private(set) var found: [UInt8]?
    private(set) var failure: String?
    private(set) var headers = 0

    init(limit: Int, where match: @escaping (String) -> Bool) {
        self.limit = limit
        self.match = match
    }

    /// Takes the next bytes of the tar; false once the file was found,
    /// the tar was found malformed, or it ended.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < bytes.count {
            switch state {
            case .header:
                let n = min(512 - header.count, bytes.count - i)
                header.append(contentsOf: bytes[i..<(i + n)])
                i += n
                guard header.count == 512 else { continue }
                if header.allSatisfy({ $0 == 0 }) { return false }   // the end
                guard startEntry() else { return false }
            case .data(let remaining):
                let n = min(remaining, bytes.count - i)
                if entry.keep { body.append(contentsOf: bytes[i..<(i + n)]) }
                i += n
                if n == remaining {
                    guard endEntry() else { return false }
                } else {
                    state = .data(remaining: remaining - n)
                }
            case .padding(let left):
                let n = min(left, bytes.count - i)
                i += n
                state = n == left ? .header : .padding(left - n)
            }
        }
        return true
    }

    private mutating func startEntry() -> Bool {
        let h = header
        header = []
        guard TarScanner.checksumMatches(h) else { return fail("not a tar archive (bad header)") }
        headers += 1
        guard let size = TarScanner.octal(h, 124, 12), size >= 0 else { return fail("truncated tar archive") }
        var name = longName ?? TarScanner.path(h)
        longName = nil
        if name.hasPrefix("./") { name.removeFirst(2) }
        let type = h[156]
        let regular = type == 0 || type == UInt8(ascii: "0")
        let matched = regular && match(name)
        let meta = type == UInt8(ascii: "L") || type == UInt8(ascii: "x")
        if matched && size > limit { return fail("\(name) is larger than \(limit >> 20) MiB") }
        if meta && size > 1 << 20 { return fail("tar extended header larger than 1 MiB") }
        entry = (type, size, matched || meta, matched)
        body = []
        if size == 0 { return endEntry() }
        state = .data(remaining: size)
        return true
    }

    private mutating func endEntry() -> Bool {
        if entry.matched {
            found = body
            return false
        }
        if entry.type == UInt8(ascii: "L") { longName = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self) }
        if entry.type == UInt8(ascii: "x") { longName = TarScanner.paxPath(body) }
        body = []
        let pad = (512 - entry.size % 512) % 512
        state = pad > 0 ? .padding(pad) : .header
        return true
    }

    private mutating func fail(_ why: String) -> Bool {
        failure = why
        return false
    }

    private static func path(_ h: [UInt8]) -> String {
        let name = String(decoding: h[0..<100].prefix { $0 != 0 }, as: UTF8.self)
        let ustar = h[257..<262].elementsEqual("ustar".utf8)
        let prefix = ustar ? String(decoding: h[345..<500].prefix { $0 != 0 }, as: UTF8.self) : ""
        return prefix.isEmpty ? name : "\(prefix)/\(name)"
    }

    private static func octal(_ h: [UInt8], _ offset: Int, _ length: Int) -> Int? {
        let text = String(decoding: h[offset..<(offset + length)].prefix { $0 != 0 && $0 != 32 }, as: UTF8.self)
        return text.isEmpty ? 0 : Int(text, radix: 8)
    }

    private static func checksumMatches(_ h: [UInt8]) -> Bool {
        guard let stored = octal(h, 148, 8) else { return false }
        var sum = 0
        for (i, b) in h.enumerated() { sum += (i >= 148 && i < 156) ? 32 : Int(b) }
        return sum == stored
    }

    /// `path=` from a pax extended header's records (`LEN path=VALUE\n`).
    private static func paxPath(_ body: [UInt8]) -> String? {
        for record in String(decoding: body, as: UTF8.self).split(separator: "\n") {
            guard let space = record.firstIndex(of: " ") else { continue }
            let kv = record[record.index(after: space)...]
            if kv.hasPrefix("path=") { return String(kv.dropFirst(5)) }
        }
        return nil
    }
}
