import Glibc
import Synchronization

/// How a busy loop sends complete cached files to loopback clients.
enum LoopbackSend: UInt8, Sendable {
    /// From mapped windows of the file (`Connection.sendCopied`).
    case copy = 0
    /// sendfile(2): the socket takes page-cache pages; the client copies from them.
    case sendfile = 1

    var other: LoopbackSend { self == .copy ? .sendfile : .copy }
}

/// The measured choice between copying and sendfile for file bodies to
/// loopback clients while a loop is busy (`SendBufferPolicy.busyLoop` file
/// bodies or more), as a pure state machine over samples: here epochs of
/// about a second; `LoneStreamSendChooser` runs the same trial over lone
/// streams, each one sample.
///
/// Why measure instead of fixing one: over loopback the client shares the
/// machine, and which way costs the machine less per byte depends on its
/// caches. The copy pays off when the client finds the server's fresh copy
/// still in a cache; sendfile makes it read page-cache pages instead. Row 5
/// of bench/run (100 clients x 20 warm 10 MB layers), alternating rounds:
/// on an AMD EPYC with 2 MiB of L2 per core, copied 5296-5386 MB/s against
/// sendfile's 3517-3626 (clients 3.8 against 8.4 CPU-s per 20 GB); on an
/// AMD EPYC with 512 KiB of L2 per core, copied 2376-2877 against sendfile's
/// 3157-3787 (server 5.6-7.0 against 2.4-3.0 CPU-s, the clients' the same).
/// A lone stream is decided apart, by its own speed (`LoneStreamSendChooser`).
///
/// The objective is the whole machine's busy CPU time per byte sent
/// (`MachineCPU`): when the cores are saturated that is the inverse of the
/// throughput, when they are not it is what the load costs. Only steady
/// epochs count: no loop became busy or stopped being busy during them
/// (an epoch where 100 clients start or finish holds their start-up and
/// exit, whichever way is being tried), and at least `minBytesPerSecond`
/// went out. A fresh chooser is already trying copy against sendfile (its
/// first steady epoch is the trial's first), and the trial runs again after
/// `settleSamples` more: eight samples in the order challenger, incumbent,
/// incumbent, challenger, twice (so that a steady drift weighs on both
/// alike); the challenger takes over when its cost (the median of its
/// samples' ticks per byte) is `margin` lower (in the first trial, when
/// it is lower at all). A trial whose first half
/// (itself balanced) already differs by `earlyRatio` either way, every
/// sample of one way below every one of the other, ends there: each
/// epoch on the dearer way is the cost of knowing, and the first trial
/// runs while a fresh daemon's first load is being served (row 5 on the
/// 512 KiB machine: copying cost 1.14-1.35x sendfile's in fourteen trials, and
/// the whole schedule overlapped three of the row's five runs).
struct LoopbackSendTrial: Equatable {
    struct Epoch: Equatable {
        var bytes: Int64
        var busyTicks: Int64
        var millis: UInt64
        /// No loop became busy or idle during the epoch.
        var steady: Bool

        /// Steady, about a second long, busy ticks read, at least `minBytesPerSecond` sent.
        var isLoaded: Bool {
            steady && (500...3000).contains(millis) && busyTicks > 0
                && bytes * 1000 / Int64(millis) >= LoopbackSendTrial.minBytesPerSecond
        }
    }

    /// One measurement of the way that was `mode`: `bytes` sent for `spent`
    /// (a loaded epoch's busy ticks; a lone stream's microseconds, see
    /// `LoneStreamSendChooser`). Lower `spent` per byte is better.
    struct Sample: Equatable {
        var bytes: Int64
        var spent: Int64
    }

    struct Decision: Equatable {
        var chosen: LoopbackSend
        /// What each way spent per byte in the trial (the median of its samples).
        var copyCost: Double
        var sendfileCost: Double
    }

    enum State: Equatable {
        case settled(LoopbackSend, samplesLeft: Int)
        case trying(incumbent: LoopbackSend, slot: Int, incumbentSide: Side, challengerSide: Side)
    }

    /// One way's samples in a trial, as what each spent per byte.
    struct Side: Equatable {
        var costs: [Double] = []
        /// The median (of an even count, the mean of the middle two): one
        /// outlier (a lone stream's first pull after a pause ran 1.7x slow
        /// either way) does not carry a side.
        var cost: Double {
            let c = costs.sorted()
            guard !c.isEmpty else { return 0 }
            return c.count % 2 == 1 ? c[c.count / 2] : (c[c.count / 2 - 1] + c[c.count / 2]) / 2
        }
    }

    /// true: the challenger's sample.
    static let schedule = [true, false, false, true, true, false, false, true]
    static let minBytesPerSecond: Int64 = 100_000_000
    static let settleSamples = 300
    static let margin = 0.10
    static let earlySlots = 4
    static let earlyRatio = 1.2

    private(set) var state = State.trying(incumbent: .copy, slot: 0, incumbentSide: Side(), challengerSide: Side())
    /// The way to send until the next sample.
    private(set) var mode = LoopbackSend.copy.other
    /// Whether a trial has chosen yet. The margin keeps a way some trial
    /// chose; a fresh chooser's first trial has nothing to keep (copy is its
    /// incumbent only by the schedule), so it takes the cheaper way (row 5,
    /// session 21: sendfile measured 8% cheaper, the margin kept copy, and
    /// the run cost the machine 17.6 CPU-s per 20 GB against nginx's 14.9).
    private(set) var decided = false

    init() {}

    /// Settled on `mode` until `settleSamples` samples have passed.
    init(settledOn mode: LoopbackSend) {
        state = .settled(mode, samplesLeft: Self.settleSamples)
        self.mode = mode
        decided = true
    }

    /// Takes the epoch that just ended (sent with `mode`) if it was loaded;
    /// returns the decision when it ended a trial.
    mutating func record(_ e: Epoch) -> Decision? {
        e.isLoaded ? record(Sample(bytes: e.bytes, spent: e.busyTicks)) : nil
    }

    /// Takes a sample of `mode`; returns the decision when it ended a trial.
    mutating func record(_ e: Sample) -> Decision? {
        guard e.bytes > 0, e.spent > 0 else { return nil }
        switch state {
        case .settled(let m, let left):
            if left > 0 {
                state = .settled(m, samplesLeft: left - 1)
                return nil
            }
            state = .trying(incumbent: m, slot: 0, incumbentSide: Side(), challengerSide: Side())
            mode = Self.schedule[0] ? m.other : m
            return nil
        case .trying(let incumbent, let slot, var incumbentSide, var challengerSide):
            let cost = Double(e.spent) / Double(e.bytes)
            if Self.schedule[slot] { challengerSide.costs.append(cost) } else { incumbentSide.costs.append(cost) }
            let next = slot + 1
            let inc = incumbentSide.cost, chal = challengerSide.cost
            // Early only when every sample of one way beat every one of the other.
            let apart = (challengerSide.costs.max() ?? 0) < (incumbentSide.costs.min() ?? 0)
                || (incumbentSide.costs.max() ?? 0) < (challengerSide.costs.min() ?? 0)
            let decisive = next == Self.earlySlots && inc > 0 && chal > 0 && apart
                && (chal * Self.earlyRatio <= inc || chal >= inc * Self.earlyRatio)
            guard next == Self.schedule.count || decisive else {
                state = .trying(incumbent: incumbent, slot: next, incumbentSide: incumbentSide, challengerSide: challengerSide)
                mode = Self.schedule[next] ? incumbent.other : incumbent
                return nil
            }
            let chosen = chal < inc * (1 - (decided ? Self.margin : 0)) ? incumbent.other : incumbent
            decided = true
            state = .settled(chosen, samplesLeft: Self.settleSamples)
            mode = chosen
            return incumbent == .copy
                ? Decision(chosen: chosen, copyCost: inc, sendfileCost: chal)
                : Decision(chosen: chosen, copyCost: chal, sendfileCost: inc)
        }
    }
}

/// The running chooser, shared by every loop: connections read `mode` and
/// count what they send under it; the first loop's tick closes each epoch.
final class LoopbackSendChooser: Sendable {
    private let current = Atomic<UInt8>(LoopbackSendTrial().mode.rawValue)
    private let sent = Atomic<Int64>(0)
    private let unsteady = Atomic<Bool>(true)
    private struct Clock {
        var trial = LoopbackSendTrial()
        var last: (millis: UInt64, bytes: Int64, ticks: Int64)?
    }
    private let clock = Mutex(Clock())

    var mode: LoopbackSend { LoopbackSend(rawValue: current.load(ordering: .relaxed)) ?? .copy }

    /// Bytes a busy loop sent to a loopback client (either way).
    func note(sent n: Int) { sent.add(Int64(n), ordering: .relaxed) }

    /// What busy loops have sent to loopback clients so far.
    var sentBytes: Int64 { sent.load(ordering: .relaxed) }

    /// Settles on `mode` as if a trial had chosen it (tests).
    func use(_ mode: LoopbackSend) {
        clock.withLock { c in
            c.trial = LoopbackSendTrial(settledOn: mode)
            current.store(mode.rawValue, ordering: .relaxed)
        }
    }

    /// A loop became busy or stopped being busy: this epoch does not count.
    func markUnsteady() { unsteady.store(true, ordering: .relaxed) }

    /// Ends an epoch (the first loop's tick, about once a second).
    func tick(nowMillis: UInt64) {
        guard let ticks = MachineCPU.busyTicks() else { return }
        let bytes = sent.load(ordering: .relaxed)
        let steady = !unsteady.exchange(false, ordering: .relaxed)
        let decision: LoopbackSendTrial.Decision? = clock.withLock { c in
            defer { c.last = (nowMillis, bytes, ticks) }
            guard let last = c.last, nowMillis > last.millis else { return nil }
            let d = c.trial.record(.init(bytes: bytes - last.bytes, busyTicks: ticks - last.ticks, millis: nowMillis - last.millis, steady: steady))
            if bytes > last.bytes {
                // What the trial saw, for whoever asks why it chose ([log] level = debug).
                Log.debug("loopback send epoch", [
                    "bytes": String(bytes - last.bytes), "busy_ticks": String(ticks - last.ticks),
                    "millis": String(nowMillis - last.millis), "steady": String(steady), "next": "\(c.trial.mode)",
                ])
            }
            current.store(c.trial.mode.rawValue, ordering: .relaxed)
            return d
        }
        if let d = decision {
            // Busy ticks per byte as CPU-ms per GB.
            let msPerGB = 1e12 / Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
            Log.info("loopback file sends on busy loops: \(d.chosen) measured cheaper", [
                "copy_cpu_ms_per_gb": String(Int(d.copyCost * msPerGB)),
                "sendfile_cpu_ms_per_gb": String(Int(d.sendfileCost * msPerGB)),
            ])
        }
    }
}
