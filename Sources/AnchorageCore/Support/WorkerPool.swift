import Foundation

/// A fixed set of threads for short blocking jobs (manifest fetches, token
/// requests, directory reads) so event loops never block. Long transfers
/// (blob fetches) get a thread of their own instead of occupying the pool.
///
/// Jobs that wait on one upstream carry its name as their key, and at most
/// half the threads run jobs of one key at a time; the rest of that key's
/// jobs wait in a queue of their own. An upstream that accepts and never
/// answers then holds at most its share, and work for the others goes on.
public final class WorkerPool: @unchecked Sendable {
    private let cond = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    /// The most threads one key's jobs may hold.
    let share: Int
    private var running: [String: Int] = [:]
    private var held: [String: [@Sendable () -> Void]] = [:]

    public init(threads: Int, name: String) {
        share = max(1, threads / 2)
        for i in 0..<max(1, threads) {
            let t = Thread { [self] in loop() }
            t.name = "\(name)-\(i)"
            t.start()
        }
    }

    public func submit(key: String? = nil, _ job: @escaping @Sendable () -> Void) {
        cond.lock()
        defer { cond.unlock() }
        guard let key else {
            enqueue(job)
            return
        }
        if running[key, default: 0] >= share {
            held[key, default: []].append(job)
            return
        }
        running[key, default: 0] += 1
        enqueue(keyed(key, job))
    }

    /// Called with the lock held.
    private func enqueue(_ job: @escaping @Sendable () -> Void) {
        jobs.append(job)
        cond.signal()
    }

    private func keyed(_ key: String, _ job: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        { [self] in
            job()
            cond.lock()
            defer { cond.unlock() }
            if var waiting = held[key], !waiting.isEmpty {
                let next = waiting.removeFirst()
                held[key] = waiting.isEmpty ? nil : waiting
                enqueue(keyed(key, next))
            } else {
                running[key, default: 1] -= 1
                if running[key] == 0 { running.removeValue(forKey: key) }
            }
        }
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

/// Threads for long blocking jobs (blob fetches): each job gets a thread of
/// its own, but a thread that finished one waits `idleSeconds` for the next
/// before it exits, and `keep` threads wait for ever. A cold pull then starts
/// its upstream request without creating a thread.
final class ParkedThreads: @unchecked Sendable {
    private let cond = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    /// Threads not running a job: parked, or started and not yet parked.
    private var idle = 0
    private var threads = 0
    private let keep: Int
    private let idleSeconds: Double
    private let name: String

    init(keep: Int, idleSeconds: Double, name: String) {
        self.keep = keep
        self.idleSeconds = idleSeconds
        self.name = name
        cond.lock()
        threads = keep
        idle = keep
        cond.unlock()
        for _ in 0..<keep { detachThread(name: name) { [self] in loop() } }
    }

    /// Threads alive now, parked or working.
    var threadCount: Int {
        cond.lock()
        defer { cond.unlock() }
        return threads
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        cond.lock()
        jobs.append(job)
        // Every queued job needs an idle thread of its own.
        let spawn = idle < jobs.count
        if spawn {
            threads += 1
            idle += 1
        } else {
            cond.signal()
        }
        cond.unlock()
        if spawn { detachThread(name: name) { [self] in loop() } }
    }

    private func loop() {
        cond.lock()
        while true {
            while jobs.isEmpty {
                let woken = cond.wait(until: Date(timeIntervalSinceNow: idleSeconds))
                if !woken && jobs.isEmpty && threads > keep {
                    threads -= 1
                    idle -= 1
                    cond.unlock()
                    return
                }
            }
            let job = jobs.removeFirst()
            idle -= 1
            cond.unlock()
            job()
            cond.lock()
            idle += 1
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
