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
        var unpacked: [UInt8] = []
        let inflated = Gzip.decompress(archive, limit: maxUnpackedBytes) { piece in
            unpacked.append(contentsOf: piece)
            return true
        }
        guard inflated != nil else { return .failure(.reason("not a gzip archive (or it unpacks to more than \(maxUnpackedBytes >> 20) MiB)")) }
        let chartYaml: [UInt8]
        switch TarReader.find(in: unpacked, where: { path in
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            return parts.count == 2 && parts[1] == "Chart.yaml"
        }) {
        case .failure(let why): return .failure(.reason(why.reason))
        case .success(nil): return .failure(.reason("no Chart.yaml at the top of the chart directory"))
        case .success(let bytes?): chartYaml = bytes
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

/// Reads ustar/pax/GNU tar headers in memory to find one file.
enum TarReader {
    /// The contents of the first regular file whose path satisfies `match`
    /// (nil when there is none); a failure when the bytes are not a tar.
    struct Malformed: Error { let reason: String }

    static func find(in tar: [UInt8], where match: (String) -> Bool) -> Result<[UInt8]?, Malformed> {
        var at = 0
        var longName: String?
        var headers = 0
        while at + 512 <= tar.count {
            let header = tar[at..<(at + 512)]
            if header.allSatisfy({ $0 == 0 }) { return headers > 0 ? .success(nil) : .failure(Malformed(reason: "empty tar archive")) }
            guard checksumMatches(header) else { return .failure(Malformed(reason: "not a tar archive (bad header at byte \(at))")) }
            headers += 1
            guard let size = octal(header, 124, 12), size >= 0, at + 512 + size <= tar.count else {
                return .failure(Malformed(reason: "truncated tar archive"))
            }
            let type = header[at + 156]
            let body = Array(tar[(at + 512)..<(at + 512 + size)])
            var name = longName ?? path(header, at)
            longName = nil
            switch type {
            case UInt8(ascii: "L"):
                longName = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
            case UInt8(ascii: "x"):
                longName = paxPath(body)
            case 0, UInt8(ascii: "0"):
                if name.hasPrefix("./") { name.removeFirst(2) }
                if match(name) { return .success(body) }
            default:
                break
            }
            at += 512 + (size + 511) / 512 * 512
        }
        return headers > 0 ? .success(nil) : .failure(Malformed(reason: "not a tar archive"))
    }

    private static func path(_ h: ArraySlice<UInt8>, _ at: Int) -> String {
        let name = String(decoding: h[at..<(at + 100)].prefix { $0 != 0 }, as: UTF8.self)
        let ustar = h[(at + 257)..<(at + 262)].elementsEqual("ustar".utf8)
        let prefix = ustar ? String(decoding: h[(at + 345)..<(at + 500)].prefix { $0 != 0 }, as: UTF8.self) : ""
        return prefix.isEmpty ? name : "\(prefix)/\(name)"
    }

    private static func octal(_ h: ArraySlice<UInt8>, _ offset: Int, _ length: Int) -> Int? {
        let start = h.startIndex + offset
        let text = String(decoding: h[start..<(start + length)].prefix { $0 != 0 && $0 != 32 }, as: UTF8.self)
        return text.isEmpty ? 0 : Int(text, radix: 8)
    }

    private static func checksumMatches(_ h: ArraySlice<UInt8>) -> Bool {
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
