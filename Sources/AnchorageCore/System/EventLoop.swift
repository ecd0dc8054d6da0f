import CLinux
import Dispatch
import Glibc
import Synchronization

/// Something registered with an `EventLoop` for readiness on one fd.
protocol EventHandler: AnyObject {
    func handleEvent(_ events: UInt32)
}

// <sys/epoll.h> values; Swift's Glibc module does not export the enum.
let EV_IN: UInt32 = 0x001
let EV_OUT: UInt32 = 0x004
let EV_ERR: UInt32 = 0x008 | 0x010   // EPOLLERR | EPOLLHUP

/// One epoll loop on one thread. Everything registered with it (listener,
/// connections) is touched only from that thread; other threads hand it work
/// through `execute`, which wakes it through an eventfd.
///
/// Handlers are kept in an array indexed by fd: fds are small dense integers,
/// so lookup per event is one bounds check, no hashing.
final class EventLoop: @unchecked Sendable {
    let epfd: Int32
    private let wakefd: Int32
    private var handlers: [EventHandler?] = []
    private let mailbox = Mutex<[@Sendable () -> Void]>([])
    private var thread: pthread_t?
    private var tickHandlers: [(UInt64) -> Void] = []
    private var lastTick: UInt64 = 0
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    let index: Int

    init(index: Int) throws {
        self.index = index
        epfd = anch_epoll_create()
        guard epfd >= 0 else { throw SystemError("epoll_create1") }
        wakefd = anch_eventfd()
        guard wakefd >= 0 else { throw SystemError("eventfd") }
        _ = anch_epoll_ctl(epfd, Int32(ANCH_EPOLL_CTL_ADD), wakefd, EV_IN)
    }

    var inLoopThread: Bool {
        guard let t = thread else { return false }
        return pthread_equal(pthread_self(), t) != 0
    }

    func register(_ fd: Int32, events: UInt32, _ handler: EventHandler) {
        if Int(fd) >= handlers.count {
            handlers.append(contentsOf: repeatElement(nil, count: Int(fd) - handlers.count + 1024))
        }
        handlers[Int(fd)] = handler
        _ = anch_epoll_ctl(epfd, Int32(ANCH_EPOLL_CTL_ADD), fd, events)
    }

    func modify(_ fd: Int32, events: UInt32) {
        _ = anch_epoll_ctl(epfd, Int32(ANCH_EPOLL_CTL_MOD), fd, events)
    }

    /// Forgets the fd; the caller closes it.
    func unregister(_ fd: Int32) {
        _ = anch_epoll_ctl(epfd, Int32(ANCH_EPOLL_CTL_DEL), fd, 0)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    /// Runs `task` on the loop thread, soon. Safe from any thread.
    func execute(_ task: @escaping @Sendable () -> Void) {
        mailbox.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wakefd, &one, 8)
    }

    /// Called about once a second on the loop thread with the monotonic time in ms.
    func onTick(_ handler: @escaping (UInt64) -> Void) {
        tickHandlers.append(handler)
    }

    func stop() {
        execute { [self] in stopping = true }
    }

    func waitUntilStopped(timeout: Double) {
        _ = stopped.wait(timeout: .now() + timeout)
    }

    func run() {
        defer { stopped.signal() }
        thread = pthread_self()
        var fds = [Int32](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        while !stopping {
            let n = anch_epoll_wait(epfd, &fds, &events, 256, 250)
            if n < 0 && errno != EINTR { break }
            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = fds[i]
                    if fd == wakefd {
                        drainMailbox()
                        continue
                    }
                    if Int(fd) < handlers.count, let h = handlers[Int(fd)] {
                        h.handleEvent(events[i])
                    }
                }
            }
            let now = monotonicMillis()
            if now &- lastTick >= 1000 {
                lastTick = now
                for t in tickHandlers { t(now) }
            }
        }
    }

    private func drainMailbox() {
        var counter: UInt64 = 0
        _ = read(wakefd, &counter, 8)
        let tasks = mailbox.withLock { box -> [@Sendable () -> Void] in
            let t = box
            box.removeAll(keepingCapacity: true)
            return t
        }
        for t in tasks { t() }
    }
}
