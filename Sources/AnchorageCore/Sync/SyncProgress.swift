import Foundation
import Glibc
import Synchronization

/// What a sync shows while it runs: on a terminal, one live line (items
/// done/total, bytes, rate, ETA, last item); otherwise (cron, CI, the daemon)
/// one log line per item. Both go to stderr; `--json` output owns stdout.
final class SyncProgress: Sendable {
    struct Snapshot: Sendable {
        var total = 0, done = 0, failed = 0
        var bytesTotal: Int64 = 0, bytesDone: Int64 = 0
        var started = Date()
        var current = ""
    }
    private typealias S = Snapshot

    private let s = Mutex(S())
    let live: Bool

    init(live: Bool) { self.live = live }

    static func forStderr() -> SyncProgress { SyncProgress(live: isatty(2) == 1) }

    func begin(total: Int, bytes: Int64) {
        s.withLock { $0 = S(total: total, bytesTotal: bytes, started: Date()) }
        if !live { Log.info("sync started", ["items": "\(total)", "bytes": ByteSize(bytes).description]) }
    }

    func bytes(_ n: Int64) {
        s.withLock { $0.bytesDone += n }
        draw()
    }

    func item(_ label: String, ok: Bool, bytes: Int64, error: String?, dryRun: Bool) {
        s.withLock {
            $0.done += 1
            $0.failed += ok ? 0 : 1
            $0.current = label
        }
        if dryRun {
            print("\(ok ? "would fetch" : "FAILED     ")  \(ByteSize(bytes).description.padding(toLength: 10, withPad: " ", startingAt: 0))  \(label)\(error.map { "  (\($0))" } ?? "")")
        } else if live {
            if !ok { FileHandle.standardError.write(Data("\r\u{1B}[KFAILED \(label): \(error ?? "")\n".utf8)) }
            draw()
        } else {
            let fields: KeyValuePairs<String, String> = ["item": label, "status": ok ? "ok" : "failed", "bytes": "\(bytes)", "error": error ?? ""]
            if ok { Log.info("sync item", fields) } else { Log.warn("sync item", fields) }
        }
    }

    /// Where the run is now (for the console's live view).
    var snapshot: Snapshot { s.withLock { $0 } }

    private func draw() {
        guard live else { return }
        let st = s.withLock { $0 }
        let secs = max(Date().timeIntervalSince(st.started), 0.001)
        let rate = Double(st.bytesDone) / secs
        let eta = rate > 0 ? Int(Double(st.bytesTotal - st.bytesDone) / rate) : 0
        let line = String(format: "\r\u{1B}[K[%d/%d] %@ of %@  %@/s  ETA %d:%02d  %@", st.done, st.total,
                          ByteSize(st.bytesDone).description, ByteSize(st.bytesTotal).description,
                          ByteSize(Int64(rate)).description, eta / 60, eta % 60, String(st.current.suffix(50)))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func end(_ r: SyncEngine.Report) {
        if live { FileHandle.standardError.write(Data("\n".utf8)) }
        for f in r.failedRules { Log.warn("sync rule failed", ["rule": f.rule, "error": f.error]) }
        if let fatal = r.fatal { Log.error("sync failed", ["error": fatal]) }
    }
}

extension SyncEngine.Report {
    /// The machine-readable summary (`--json`).
    public var json: String {
        let obj: [String: Any] = [
            "ok": ok,
            "failures": failures,
            "seconds": (seconds * 1000).rounded() / 1000,
            "bytes_to_fetch": bytesToFetch,
            "bytes_fetched": bytesFetched,
            "error": fatal ?? NSNull(),
            "items": items.map { ["item": $0.label, "ok": $0.ok, "bytes": $0.bytes, "error": $0.error ?? NSNull()] as [String: Any] },
            "failed_rules": failedRules.map { ["rule": $0.rule, "error": $0.error] },
        ]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public var summaryLine: String {
        "\(items.count) items, \(failures) failed, \(ByteSize(bytesFetched)) fetched in \(String(format: "%.1f", seconds))s"
    }
}
