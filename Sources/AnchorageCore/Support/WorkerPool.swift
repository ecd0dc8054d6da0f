import Foundation

/// A fixed set of threads for short blocking jobs (manifest fetches, token
/// requests, directory reads) so event loops never block. Long transfers
/// (blob fetches) get a thread of their own instead of occupying the pool.
public final class WorkerPool: @unchecked Sendable {
    private let cond = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0

    public init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            let t = Thread { [self] in loop() }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    public func submit(_ job: @escaping @Sendable () -> Void) {
        cond.lock()
        jobs.append(job)
        cond.signal()
        cond.unlock()
    }

    private func loop() {
        while true {
            cond.lock()
            while head >= jobs.count { cond.wait() }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            cond.unlock()
            job()
        }
    }
}

/// Runs a long job on a thread of its own.
func detachThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let t = Thread(block: body)
    t.name = name
    t.stackSize = 512 * 1024
    t.start()
}
