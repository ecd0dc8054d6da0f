import Foundation
import XCTest
@testable import AnchorageCore

/// `LoopbackSendTrial` (the choice between copying and sendfile for busy
/// loops' loopback clients), `MachineCPU`, and a busy loop sending by sendfile.
final class LoopbackSendTests: XCTestCase {
    typealias Trial = LoopbackSendTrial

    /// A steady, loaded epoch of a second: `bytes` sent for `ticks` busy ticks.
    private func epoch(_ bytes: Int64, _ ticks: Int64, steady: Bool = true, millis: UInt64 = 1000) -> Trial.Epoch {
        Trial.Epoch(bytes: bytes, busyTicks: ticks, millis: millis, steady: steady)
    }

    /// Runs one trial in which each way costs what `cost` says (ticks per
    /// GB) until it decides; returns the decision and the epochs it took.
    private func runTrial(_ t: inout Trial, cost: (LoopbackSend) -> Int64) -> (decision: Trial.Decision?, epochs: Int) {
        for n in 1...Trial.schedule.count {
            if let d = t.record(epoch(1_000_000_000, cost(t.mode))) { return (d, n) }
        }
        return (nil, Trial.schedule.count)
    }

    func testEpochsWithoutSteadyLoadSayNothing() {
        var t = Trial()
        let fresh = Trial.State.trying(incumbent: .copy, slot: 0, incumbentSide: .init(), challengerSide: .init())
        XCTAssertEqual(t.state, fresh)
        XCTAssertEqual(t.mode, .sendfile)
        XCTAssertNil(t.record(epoch(50_000_000, 100)), "under 100 MB/s")
        XCTAssertNil(t.record(epoch(1_000_000_000, 100, steady: false)), "a loop became busy or idle")
        XCTAssertNil(t.record(epoch(1_000_000_000, 100, millis: 200)), "too short")
        XCTAssertNil(t.record(epoch(1_000_000_000, 100, millis: 9000)), "a stalled tick")
        XCTAssertNil(t.record(epoch(1_000_000_000, 0)), "no busy ticks read")
        XCTAssertEqual(t.state, fresh)
        XCTAssertEqual(t.mode, .sendfile)
    }

    /// A fresh trial tries copy (the incumbent) against sendfile from its
    /// first steady epoch on, following the schedule; unsteady epochs in
    /// between leave its place as it was.
    func testTrialAlternatesAndSwitchesWhenTheChallengerIsCheaper() {
        var t = Trial()
        XCTAssertEqual(t.mode, .sendfile, "the challenger goes first")
        var modes: [LoopbackSend] = []
        var decision: Trial.Decision?
        for i in Trial.schedule.indices {
            modes.append(t.mode)
            if i == 3 { XCTAssertNil(t.record(epoch(1_000, 100, steady: false))) }
            XCTAssertNil(decision, "a difference under earlyRatio runs the whole schedule")
            decision = t.record(epoch(1_000_000_000, t.mode == .sendfile ? 88 : 100))
        }
        XCTAssertEqual(modes, Trial.schedule.map { $0 ? .sendfile : .copy })
        XCTAssertEqual(decision?.chosen, .sendfile)
        XCTAssertEqual(decision?.copyCost ?? 0, 100e-9, accuracy: 1e-12)
        XCTAssertEqual(decision?.sendfileCost ?? 0, 88e-9, accuracy: 1e-12)
        XCTAssertEqual(t.mode, .sendfile)
        XCTAssertEqual(t.state, .settled(.sendfile, samplesLeft: Trial.settleSamples))
    }

    /// A trial after the first: settled on `incumbent`, its settled samples
    /// passed, the next sample starts the trial.
    private func laterTrial(_ incumbent: LoopbackSend) -> Trial {
        var t = Trial(settledOn: incumbent)
        for _ in 0...Trial.settleSamples { _ = t.record(epoch(1_000_000_000, 100)) }
        XCTAssertEqual(t.state, .trying(incumbent: incumbent, slot: 0, incumbentSide: .init(), challengerSide: .init()))
        return t
    }

    func testIncumbentStaysUnlessTheChallengerIsCheaperByTheMargin() {
        var t = laterTrial(.copy)
        let (d, epochs) = runTrial(&t) { $0 == .sendfile ? 95 : 100 }
        XCTAssertEqual(d?.chosen, .copy, "5% is inside the margin")
        XCTAssertEqual(epochs, Trial.schedule.count)
        XCTAssertEqual(t.mode, .copy)
        var s = laterTrial(.sendfile)
        XCTAssertEqual(runTrial(&s) { $0 == .copy ? 95 : 100 }.decision?.chosen, .sendfile, "either way round")
    }

    /// A fresh chooser's first trial has no chosen way to keep: the cheaper
    /// way wins by any amount, and only later trials need the margin.
    func testTheFirstTrialTakesTheCheaperWayWithoutTheMargin() {
        var t = Trial()
        let (d, epochs) = runTrial(&t) { $0 == .sendfile ? 92 : 100 }
        XCTAssertEqual(epochs, Trial.schedule.count)
        XCTAssertEqual(d?.chosen, .sendfile, "8% cheaper (row 5 in session 21: 861 against 936)")
        XCTAssertTrue(t.decided)
        var level = Trial()
        XCTAssertEqual(runTrial(&level) { _ in 100 }.decision?.chosen, .copy, "a tie keeps the schedule's incumbent")
    }

    /// A first half (challenger, incumbent, incumbent, challenger) that
    /// differs by `earlyRatio` or more decides, either way; less runs on.
    func testADecisiveFirstHalfEndsTheTrial() {
        func trial(sendfile: Int64, copy: Int64) -> (LoopbackSend?, Int) {
            var t = Trial()
            let (d, epochs) = runTrial(&t) { $0 == .sendfile ? sendfile : copy }
            XCTAssertEqual(t.mode, d?.chosen)
            return (d?.chosen, epochs)
        }
        XCTAssertTrue(trial(sendfile: 80, copy: 100) == (.sendfile, Trial.earlySlots), "copying 1.25x dearer")
        XCTAssertTrue(trial(sendfile: 125, copy: 100) == (.copy, Trial.earlySlots), "sendfile 1.25x dearer")
        XCTAssertTrue(trial(sendfile: 86, copy: 100) == (.sendfile, Trial.schedule.count), "1.16x: the whole schedule")
        XCTAssertTrue(trial(sendfile: 115, copy: 100) == (.copy, Trial.schedule.count), "1.15x: the whole schedule")
        // Only the first half's totals decide early: a first half that
        // looks level and a second that differs runs the whole schedule.
        var t = Trial()
        var n = 0
        var d: Trial.Decision?
        while d == nil && n < Trial.schedule.count {
            d = t.record(epoch(1_000_000_000, n < Trial.earlySlots ? 100 : (t.mode == .sendfile ? 50 : 100)))
            n += 1
        }
        XCTAssertEqual(n, Trial.schedule.count)
        XCTAssertEqual(d?.chosen, .sendfile, "sendfile (100 + 100 + 50 + 50) / 4 = 75 ticks per GB against 100")
    }

    /// A first half whose medians differ by `earlyRatio` but whose samples
    /// overlap (one slow outlier) runs on; over the whole schedule one
    /// outlier does not carry a side (the median), where the old totals
    /// switched to sendfile here.
    func testAnOutlierNeitherEndsATrialEarlyNorCarriesIt() {
        var t = laterTrial(.copy)
        var n = 0
        var d: Trial.Decision?
        // sendfile 95 but 170 in its first sample; copy 100 but 300 once, late.
        let costs: [Int64] = [170, 100, 100, 95, 95, 300, 100, 95]
        while d == nil && n < Trial.schedule.count {
            d = t.record(epoch(1_000_000_000, costs[n]))
            n += 1
        }
        XCTAssertEqual(n, Trial.schedule.count, "first half: sendfile (170 + 95) / 2 against 100, overlapping")
        XCTAssertEqual(d?.chosen, .copy, "medians 95 against 100: inside the margin")
        XCTAssertEqual(d?.sendfileCost ?? 0, 95e-9, accuracy: 1e-12)
        XCTAssertEqual(d?.copyCost ?? 0, 100e-9, accuracy: 1e-12)
    }

    /// Lone streams (`LoneStreamSendChooser`): a body is a sample only when
    /// it was measured whole (a candidate, at least `minBytes`) and no other
    /// large body was going out at any moment of it; samples drive the
    /// trial (by microseconds per byte) like epochs.
    func testOnlyWholeLoneBodiesAreSamplesOfTheLoneTrial() {
        let c = LoneStreamSendChooser()
        let big = LoneStreamSendChooser.minBytes
        XCTAssertEqual(c.mode, .sendfile, "a fresh trial tries sendfile first")
        var a = c.begin(nowMicros: 1_000)
        XCTAssertEqual(a.way, .sendfile)
        c.end(a, measured: big, nowMicros: 21_000)
        XCTAssertEqual(c.samples, 1)
        XCTAssertEqual(c.mode, .copy, "the schedule's second slot")

        a = c.begin(nowMicros: 20_000)
        c.end(a, measured: nil, nowMicros: 30_000)
        a = c.begin(nowMicros: 40_000)
        c.end(a, measured: big - 1, nowMicros: 50_000)
        XCTAssertEqual(c.samples, 1, "cut short or not a candidate, and under minBytes: not samples")

        // Overlapping either way: begun while another was going, or another begun meanwhile.
        a = c.begin(nowMicros: 60_000)
        let b = c.begin(nowMicros: 61_000)
        c.end(a, measured: big, nowMicros: 70_000)
        let later = c.begin(nowMicros: 71_000)
        c.end(b, measured: big, nowMicros: 72_000)
        c.end(later, measured: big, nowMicros: 80_000)
        XCTAssertEqual(c.samples, 1, "no body that shared the machine is a sample")

        // Copy takes 10 ms, sendfile 20 ms (as the first): decided after the first half.
        var n = 1
        var now: UInt64 = 100_000
        while n < Trial.earlySlots {
            let t = c.begin(nowMicros: now)
            now += t.way == .copy ? 10_000 : 20_000
            c.end(t, measured: big, nowMicros: now)
            n += 1
        }
        XCTAssertEqual(c.samples, Trial.earlySlots)
        XCTAssertEqual(c.mode, .copy, "settled: sendfile's samples both slower than copy's")
    }

    /// After `settleSamples` loaded epochs the choice is tried again, and a
    /// machine that changed is followed back.
    func testTrialRunsAgainAfterTheSettledEpochs() {
        var t = Trial()
        XCTAssertEqual(runTrial(&t) { $0 == .sendfile ? 50 : 100 }.decision?.chosen, .sendfile)
        for _ in 0..<Trial.settleSamples {
            XCTAssertNil(t.record(epoch(1_000_000_000, 50)))
            XCTAssertEqual(t.mode, .sendfile)
        }
        XCTAssertNil(t.record(epoch(1_000_000_000, 50)))
        XCTAssertEqual(t.mode, .copy, "the new trial starts with the challenger")
        XCTAssertEqual(runTrial(&t) { $0 == .copy ? 50 : 100 }.decision?.chosen, .copy)
    }

    func testProcStatParsing() {
        func parse(_ s: String) -> Int64? { Array(s.utf8).withUnsafeBufferPointer { MachineCPU.parseBusyTicks($0) } }
        // user nice system idle iowait irq softirq steal …
        XCTAssertEqual(parse("cpu  100 2 30 9999 7 4 5 8 0 0\ncpu0 1 2 3 4 5 6 7\n"), 141)
        XCTAssertNil(parse("cpu0 1 2 3 4 5 6 7\n"))
        XCTAssertNil(parse("cpu  1 2 3\n"))
        XCTAssertNil(parse(""))
        let before = MachineCPU.busyTicks()
        XCTAssertNotNil(before, "/proc/stat readable on Linux")
        let start = monotonicMillis()
        var x: UInt64 = 1
        while monotonicMillis() - start < 200 { x = x &* 6364136223846793005 &+ 1 }
        XCTAssertNotEqual(x, 0)
        XCTAssertGreaterThan(MachineCPU.busyTicks() ?? 0, before ?? .max, "200 ms of spinning shows")
    }
}
