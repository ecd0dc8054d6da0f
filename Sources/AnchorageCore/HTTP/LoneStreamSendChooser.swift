import Synchronization

/// The measured choice between copying and sendfile for a lone stream: a
/// large complete file body to a loopback client while no other large body
/// is going out on any loop (`sendfile = auto`; busy loops have
/// `LoopbackSendChooser`).
///
/// Why measure: which way a lone stream goes faster depends on the machine.
/// One client's warm 1 GiB, side by side with nginx, alternating: on the
/// machine of sessions 11 and earlier copying took it from 2.4-3.5 to
/// 5.7-6.6 GB/s; on an AMD EPYC with 512 KiB of L2 per core, with the loop
/// floating, copied 2515 against sendfile's 3232 MB/s (medians of 10; server
/// 0.40 against 0.26 CPU-s per GiB, the client 0.25 against 0.32: copying
/// made the server the bottleneck), nginx (sendfile) 3080.
///
/// The objective is the stream's own speed: each lone body of at least
/// `minBytes` that went out whole is one `LoopbackSendTrial` sample, its
/// bytes against the microseconds from its start to its last byte handed
/// to the socket. A body that shared the machine with another large body
/// (begun before it ended, or already going when it began) is not a
/// sample: it did not measure its way alone. The trial's schedule, margin
/// and early decision are the busy loops' (there in epochs, here in bodies);
/// a body that began alone keeps the way it began with (others joining it
/// do not change it), and one that began beside others on a loop not yet
/// busy is copied (`Connection.sendFromFile`).
final class LoneStreamSendChooser: Sendable {
    /// Smaller bodies are sent the current way but not measured: their time
    /// is mostly the connection's start (at 3 GB/s 32 MiB take 11 ms).
    static let minBytes: Int64 = 32 << 20

    /// A large body in flight: the way it goes if lone, and what is needed
    /// to tell afterwards whether it was alone all the while.
    struct Ticket {
        let way: LoopbackSend
        let number: UInt64
        let aloneAtStart: Bool
        let startMicros: UInt64
    }

    private let current = Atomic<UInt8>(LoopbackSendTrial().mode.rawValue)
    private let active = Atomic<Int>(0)
    private let started = Atomic<UInt64>(0)
    private let sampleCount = Atomic<Int>(0)
    private let sendfiled = Atomic<Int64>(0)
    private let trial = Mutex(LoopbackSendTrial())

    var mode: LoopbackSend { LoopbackSend(rawValue: current.load(ordering: .relaxed)) ?? .copy }

    /// Lone bodies measured so far.
    var samples: Int { sampleCount.load(ordering: .relaxed) }

    /// Bytes lone streams sent by sendfile (tests: which way went).
    var sentBySendfile: Int64 { sendfiled.load(ordering: .relaxed) }
    func noteSendfile(_ n: Int) { sendfiled.add(Int64(n), ordering: .relaxed) }

    /// Settles on `mode` as if a trial had chosen it (tests).
    func use(_ mode: LoopbackSend) {
        trial.withLock { t in
            t = LoopbackSendTrial(settledOn: mode)
            current.store(mode.rawValue, ordering: .relaxed)
        }
    }

    /// A large body began, on any loop and to any client.
    func begin(nowMicros: UInt64) -> Ticket {
        let number = started.add(1, ordering: .sequentiallyConsistent).newValue
        let alone = active.add(1, ordering: .sequentiallyConsistent).newValue == 1
        return Ticket(way: mode, number: number, aloneAtStart: alone, startMicros: nowMicros)
    }

    /// The body of `ticket` ended. `measured` is its length when it was a
    /// lone stream's candidate (a complete file to a loopback client under
    /// `sendfile = auto`, sent whole), else nil.
    func end(_ ticket: Ticket, measured: Int64?, nowMicros: UInt64) {
        active.subtract(1, ordering: .sequentiallyConsistent)
        guard let bytes = measured, bytes >= Self.minBytes, ticket.aloneAtStart,
              started.load(ordering: .sequentiallyConsistent) == ticket.number,
              nowMicros > ticket.startMicros else { return }
        let micros = Int64(nowMicros - ticket.startMicros)
        let decision: LoopbackSendTrial.Decision? = trial.withLock { t in
            // Alone all the while, so no other sample moved the trial on
            // (only `use` could have).
            guard t.mode == ticket.way else { return nil }
            sampleCount.add(1, ordering: .relaxed)
            let d = t.record(LoopbackSendTrial.Sample(bytes: bytes, spent: micros))
            current.store(t.mode.rawValue, ordering: .relaxed)
            Log.debug("loopback lone stream", [
                "bytes": String(bytes), "micros": String(micros), "way": "\(ticket.way)", "next": "\(t.mode)",
            ])
            return d
        }
        if let d = decision {
            // Microseconds per byte as ms per GB.
            Log.info("loopback lone streams: \(d.chosen) measured faster", [
                "copy_ms_per_gb": String(Int(d.copyCost * 1e6)),
                "sendfile_ms_per_gb": String(Int(d.sendfileCost * 1e6)),
            ])
        }
    }
}
