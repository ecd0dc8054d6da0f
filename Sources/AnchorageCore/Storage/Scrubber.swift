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
    let store: FileBlobStore
    let bytesPerSecond: Int64
    let intervalSeconds: Double
    let counters: Counters

    init(store: FileBlobStore, bytesPerSecond: Int64, intervalSeconds: Double, counters: Counters) {
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
        var budgetStart = monotonicMillis()
        var budgetBytes: Int64 = 0
        layout.forEachBlob { digest, path in
            guard let d = digest else { return }
            let actual = hashFile(path, d.algorithm) { n in
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
            guard let actual, actual != d else { return }
            unlink(path)
            unlink(layout.mediaType(d))
            store.index.remove(d)
            counters.corruptBlobsRemoved.add(1, ordering: .relaxed)
            Log.error("corrupt blob removed from the cache (will be fetched again)", ["digest": d.description, "actual": actual.description])
        }
    }
}
