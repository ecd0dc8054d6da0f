import Foundation
import Glibc

/// `anchorage verify`: re-hashes every cached blob against its name.
public struct Verifier {
    public struct Report {
        public var checked = 0
        public var bytes: Int64 = 0
        public var bad: [String] = []
        public var removed = 0
    }

    let layout: CacheLayout

    public init(layout: CacheLayout) { self.layout = layout }

    public func run(repair: Bool, progress: (String) -> Void = { _ in }) -> Report {
        var report = Report()
        let fm = FileManager.default
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        for alg in ((try? fm.contentsOfDirectory(atPath: layout.blobsDir)) ?? []).sorted() {
            for prefix in ((try? fm.contentsOfDirectory(atPath: "\(layout.blobsDir)/\(alg)")) ?? []).sorted() {
                let dir = "\(layout.blobsDir)/\(alg)/\(prefix)"
                for name in ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
                    let path = "\(dir)/\(name)"
                    report.checked += 1
                    guard let d = CacheLayout.digest(algorithmDir: alg, file: name), name.hasPrefix(prefix) else {
                        report.bad.append("\(path): not a digest name")
                        if repair, unlink(path) == 0 { report.removed += 1 }
                        continue
                    }
                    let fd = open(path, O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else { continue }   // evicted meanwhile
                    let h = Hasher(d.algorithm)
                    while true {
                        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if n <= 0 { break }
                        buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        report.bytes += Int64(n)
                    }
                    close(fd)
                    let actual = h.finish()
                    if actual != d {
                        report.bad.append("\(d): content hashes to \(actual)")
                        progress("BAD \(d) (content hashes to \(actual))")
                        if repair, unlink(path) == 0 {
                            unlink(layout.mediaType(d))
                            report.removed += 1
                        }
                    }
                }
            }
        }
        return report
    }
}
