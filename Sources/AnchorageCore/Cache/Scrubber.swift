import Foundation
import Glibc

/// The policy for bytes that rot on disk behind the daemon's back: hits are
/// served with sendfile and not re-hashed on the request path (that would
/// cost every hit a full read). Instead this background scrubber re-hashes
/// every cached blob, `scrub_rate` bytes per second at most, one pass every
/// `scrub_interval`; a blob whose content no longer matches its name is
/// removed (and logged and counted), so the next request fetches it again
/// from the upstream. `anchorage verify` does the same on demand.
final class Scrubber: Sendable {
    let store: BlobStore
    let bytesPerSecond: Int64
    let intervalSeconds: Double
    let counters: Counters

    init(store: BlobStore, bytesPerSecond: Int64, intervalSeconds: Double, counters: Counters) {
        self.store = store
        self.bytesPerSecond = bytesPerSecond
        self.intervalSeconds = intervalSeconds
        self.counters = counters
    }

    func start() {
        guard bytesPerSecond > 0 else { return }
        detachThread(name: "anchorage-scrub") { [self] in
            while true {
                usleep(useconds_t(min(intervalSeconds, 3600) * 1_000_000))
                pass()
            }
        }
    }

    /// One pass over every blob, paced to the byte rate.
    func pass() {
        let layout = store.layout
        let fm = FileManager.default
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var budgetStart = monotonicMillis()
        var budgetBytes: Int64 = 0
        for alg in (try? fm.contentsOfDirectory(atPath: layout.blobsDir)) ?? [] {
            for prefix in (try? fm.contentsOfDirectory(atPath: "\(layout.blobsDir)/\(alg)")) ?? [] {
                for name in (try? fm.contentsOfDirectory(atPath: "\(layout.blobsDir)/\(alg)/\(prefix)")) ?? [] {
                    guard let d = CacheLayout.digest(algorithmDir: alg, file: name) else { continue }
                    let fd = open(layout.blob(d), O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else { continue }
                    let h = Hasher(d.algorithm)
                    while true {
                        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if n <= 0 { break }
                        buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        budgetBytes += Int64(n)
                        // Pace: sleep whenever we are ahead of the allowed rate.
                        let elapsed = Double(monotonicMillis() &- budgetStart) / 1000
                        let ahead = Double(budgetBytes) / Double(bytesPerSecond) - elapsed
                        if ahead > 0.05 { usleep(useconds_t(ahead * 1_000_000)) }
                        if budgetBytes > bytesPerSecond * 10 {
                            budgetStart = monotonicMillis()
                            budgetBytes = 0
                        }
                    }
                    close(fd)
                    let actual = h.finish()
                    if actual != d {
                        unlink(layout.blob(d))
                        unlink(layout.mediaType(d))
                        store.index.remove(d)
                        counters.corruptBlobsRemoved.add(1, ordering: .relaxed)
                        Log.error("corrupt blob removed from the cache (will be fetched again)", ["digest": d.description, "actual": actual.description])
                    }
                }
            }
        }
    }
}
