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
        layout.forEachBlob { digest, path in
            report.checked += 1
            guard let d = digest else {
                report.bad.append("\(path): not a digest name")
                if repair, unlink(path) == 0 { report.removed += 1 }
                return
            }
            guard let actual = hashFile(path, d.algorithm, afterRead: { report.bytes += Int64($0) }) else { return }
            if actual != d {
                report.bad.append("\(d): content hashes to \(actual)")
                progress("BAD \(d) (content hashes to \(actual))")
                if repair, unlink(path) == 0 {
                    unlink(layout.mediaType(d))
                    report.removed += 1
                }
            }
        }
        return report
    }
}
