import Foundation
import Synchronization

/// Runs the configured sync inside the daemon, on its schedule or when
/// asked (the console): never two runs at once (the engine's lock file also
/// keeps a cron-started `anchorage sync` out), the running one's progress,
/// and the last runs for status endpoints.
final class SyncRunner: Sendable {
    struct Run: Sendable {
        let started: Date
        let finished: Date
        let trigger: String
        let ok: Bool
        let items: Int
        let failures: Int
        let bytes: Int64
        let summary: String
    }

    static let historyLength = 20

    let mirror: Mirror
    private struct State {
        var running: (trigger: String, progress: SyncProgress)?
        var history: [Run] = []
    }
    private let state = Mutex(State())

    init(mirror: Mirror) { self.mirror = mirror }

    /// The run in progress: what started it and where it is.
    var current: (trigger: String, progress: SyncProgress.Snapshot)? {
        state.withLock { s in s.running.map { ($0.trigger, $0.progress.snapshot) } }
    }

    /// Finished runs, newest first.
    var history: [Run] { state.withLock { $0.history.reversed() } }

    var last: Run? { state.withLock { $0.history.last } }

    /// Starts a run on a thread of its own; false if one is running.
    func start(trigger: String) -> Bool {
        let progress = SyncProgress(live: false)
        let started = state.withLock { s -> Bool in
            guard s.running == nil else { return false }
            s.running = (trigger, progress)
            return true
        }
        guard started else { return false }
        detachThread(name: "anchorage-sync") { [self] in run(trigger: trigger, progress: progress) }
        return true
    }

    private func run(trigger: String, progress: SyncProgress) {
        let began = Date()
        let report = SyncEngine(mirror: mirror, options: SyncEngine.Options(), progress: progress).run()
        let summary = report.fatal ?? report.summaryLine
        let run = Run(started: began, finished: Date(), trigger: trigger, ok: report.ok, items: report.items.count,
                      failures: report.failures, bytes: report.bytesFetched, summary: summary)
        state.withLock { s in
            s.running = nil
            s.history.append(run)
            if s.history.count > SyncRunner.historyLength { s.history.removeFirst() }
        }
        mirror.counters.syncRuns.add([report.ok ? "ok" : "failed"])
        Log.info("sync run", ["ok": "\(report.ok)", "summary": summary, "trigger": trigger])
    }

    static func json(_ r: Run) -> [String: Any] {
        let iso = ISO8601DateFormatter()
        return ["started": iso.string(from: r.started), "finished": iso.string(from: r.finished), "trigger": r.trigger,
                "seconds": (r.finished.timeIntervalSince(r.started) * 10).rounded() / 10,
                "ok": r.ok, "items": r.items, "failures": r.failures, "bytes": r.bytes, "summary": r.summary]
    }

    /// Runs on `schedule` for the daemon's life.
    func follow(_ schedule: Schedule) {
        detachThread(name: "anchorage-sync-schedule") { [self] in
            var next = schedule.next(after: Date())
            Log.info("sync scheduled", ["schedule": schedule.description, "next": next.map { ISO8601DateFormatter().string(from: $0) } ?? "never"])
            while let at = next {
                let wait = at.timeIntervalSinceNow
                if wait > 0 { usleep(useconds_t(min(wait, 3600) * 1_000_000)) }
                if Date() < at { continue }
                if !start(trigger: "schedule") { Log.info("sync skipped: a run is in progress") }
                next = schedule.next(after: Date())
            }
        }
    }
}
