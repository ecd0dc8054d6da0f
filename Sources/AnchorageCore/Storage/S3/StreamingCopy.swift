import Dispatch
import Synchronization

/// Copies a large blob into the bucket while it is still being fetched from
/// the upstream: a reader of the shared fetch like any client, so it sees
/// only what the fetch released (the tail after the digest matched), sending
/// each part from the temp file as soon as it is there. A fetch that fails
/// abandons the upload, so nothing of it becomes visible in the bucket.
enum StreamingCopy {
    /// Whether the copy started: a blob whose announced length is over the
    /// multipart threshold; any other (smaller, or of unknown length) is
    /// copied whole after its commit.
    final class Started: Sendable {
        private let flag = Atomic<Bool>(false)
        var value: Bool { flag.load(ordering: .acquiring) }
        fileprivate func set() { flag.store(true, ordering: .releasing) }
    }

    static func start(_ tier: ObjectStoreTier, _ d: Digest, _ fetch: SharedFetch) -> Started {
        let started = Started()
        fetch.whenHeadKnown { result in
            guard case .success(let length) = result, length > MultipartUpload.threshold, let file = fetch.localFile else { return }
            started.set()
            detachThread(name: "anchorage-store-copy") {
                let outcome = MultipartUpload(tier: tier, key: ObjectStoreTier.blobKey(d)).put(file: file, size: length, contentType: nil) { end in
                    waitUntilReleased(fetch, end)
                }
                switch outcome {
                case .failure(let e): Log.warn("object store copy failed", ["digest": d.description, "error": "\(e)"])
                case .success(false): Log.info("object store copy abandoned: the fetch failed", ["digest": d.description])
                case .success(true): break
                }
            }
        }
        return started
    }

    /// Waits until readers may have `end` bytes; false if the fetch failed.
    private static func waitUntilReleased(_ fetch: SharedFetch, _ end: Int64) -> Bool {
        while true {
            guard let available = fetch.available() else { return false }
            if available >= end { return true }
            let woken = DispatchSemaphore(value: 0)
            if fetch.notifyWhenAvailable(beyond: available, { woken.signal() }) { woken.wait() }
        }
    }
}
