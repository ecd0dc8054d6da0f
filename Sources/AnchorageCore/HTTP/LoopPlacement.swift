import CLinux

/// `[server] cpu_affinity`: whether event loops are pinned to CPUs and
/// connections go to the loop on the CPU that received them.
public enum CPUAffinity: String, Sendable, CaseIterable {
    case auto, off
}

/// The CPU each loop is pinned to, when there is one loop per CPU the
/// process may use (`cpu_affinity = auto`). A connection is then served on
/// the CPU that processed its packets (SO_INCOMING_CPU): the kernel's
/// network work for it and its wake-ups stay on one CPU. On loopback that
/// CPU is the client's own, so a client and its loop wake each other without
/// an interrupt to the other CPU, which on this VM costs more than the
/// request: wrk c64 against manifest hits measured 103-106k requests/s and
/// a p99 of ~1.0 ms steered, against 78-80k and 3.6-4.4 ms unsteered. The
/// kernel does the steering at accept (`anch_steer_reuseport_by_cpu`):
/// accepting on another loop and handing over woke a halted vCPU first
/// (a fresh connection's GET 0.28-0.31 ms against 0.18-0.19).
struct LoopCPUs: Sendable, Equatable {
    /// cpus[i] is the CPU loop i runs on.
    let cpus: [Int32]

    /// The pinning plan for `loops` loops, or nil when they are not pinned:
    /// `off`, a single loop, or a loop count other than the usable CPUs
    /// (`workers` set by hand) where a one-to-one mapping does not exist.
    static func plan(_ mode: CPUAffinity, loops: Int) -> LoopCPUs? {
        guard mode == .auto, loops > 1 else { return nil }
        let cpus = allowedCPUs()
        guard cpus.count == loops else { return nil }
        return LoopCPUs(cpus: cpus)
    }

    /// The CPUs this process may run on (its affinity mask), ascending.
    static func allowedCPUs() -> [Int32] {
        var buf = [Int32](repeating: 0, count: 1024)
        let n = anch_allowed_cpus(&buf, Int32(buf.count))
        return n > 0 ? Array(buf.prefix(Int(n))) : []
    }

    func loop(forCPU cpu: Int32) -> Int? { cpus.firstIndex(of: cpu) }
}

/// Which loop serves a new connection. A connection stays on its loop for
/// its lifetime, so an uneven spread leaves a core idle at the end of a
/// busy period (100 long downloads landed 56/42 by SO_REUSEPORT's hash, and
/// one core idled for the last fifth). The loop on the connection's CPU is
/// preferred while it holds fewer than `slack` more connections than the
/// least busy loop; otherwise, and without a preference, the least busy loop
/// takes it (the accepting loop on a tie).
enum ConnectionPlacement {
    static func slack(fewest: Int) -> Int { 4 + fewest / 8 }

    static func choose(preferred: Int?, accepting: Int, open: [Int]) -> Int {
        var best = accepting
        for (i, n) in open.enumerated() where n < open[best] { best = i }
        if let p = preferred, open.indices.contains(p), open[p] < open[best] + slack(fewest: open[best]) { return p }
        return best
    }
}
