import Foundation
import Synchronization
import XCTest
@testable import AnchorageCore

final class ParkedThreadsTests: XCTestCase {
    /// Blob fetches run for minutes: none may wait for another to end. Every
    /// job must be running at once, whether it found a parked thread or not,
    /// also in a second wave that reuses the threads of the first.
    func testEveryJobRunsAtOnceAndThreadsAreReused() {
        let threads = ParkedThreads(keep: 1, idleSeconds: 30, name: "test-fetch")
        for wave in 1...2 {
            let count = 12
            let started = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let finished = DispatchSemaphore(value: 0)
            for _ in 0..<count {
                threads.submit {
                    started.signal()
                    release.wait()
                    finished.signal()
                }
            }
            for i in 0..<count {
                XCTAssertEqual(started.wait(timeout: .now() + 10), .success, "wave \(wave): job \(i + 1) of \(count) did not start while the others ran")
            }
            for _ in 0..<count { release.signal() }
            for _ in 0..<count { XCTAssertEqual(finished.wait(timeout: .now() + 10), .success) }
        }
    }

    /// Threads beyond `keep` leave after `idleSeconds`; a job after that
    /// still runs.
    func testIdleThreadsLeaveAndWorkStillRuns() {
        let threads = ParkedThreads(keep: 1, idleSeconds: 0.2, name: "test-fetch")
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<4 { threads.submit { usleep(50_000); done.signal() } }
        for _ in 0..<4 { XCTAssertEqual(done.wait(timeout: .now() + 10), .success) }
        XCTAssertEqual(threads.threadCount, 4)
        let deadline = Date().addingTimeInterval(5)
        while threads.threadCount > 1 && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(threads.threadCount, 1, "idle threads beyond keep did not leave")
        threads.submit { done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
    }
}
