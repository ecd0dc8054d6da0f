import Foundation
import Synchronization

/// `GET|HEAD /v2/<name>/blobs/<digest>`: from the store, or fetched once from
/// the upstream while every asking client follows the growing temp file.
final class BlobService: Sendable {
    let store: FileBlobStore
    let inFlight = InFlightTable()
    let pool: WorkerPool
    /// Where leaders run their fetches.
    let fetchThreads = ParkedThreads(keep: 1, idleSeconds: 60, name: "anchorage-fetch")
    let counters: Counters
    /// The object store shared with other nodes, asked before the upstream.
    let tier: ObjectStoreTier?
    /// The cluster's other nodes: a blob another node owns is streamed from it.
    let peers: PeerFetcher?

    init(store: FileBlobStore, pool: WorkerPool, counters: Counters, tier: ObjectStoreTier? = nil, peers: PeerFetcher? = nil) {
        self.store = store
        self.pool = pool
        self.counters = counters
        self.tier = tier
        self.peers = peers
    }

    /// How to ask the digest's owner node for a blob: the registry path on
    /// it and the client's credentials. Nil for a request that came from a
    /// peer (never forwarded again) or outside a cluster.
    struct PeerRoute: Sendable {
        let path: String
        let headers: [String]
    }

    static func headers(_ d: Digest) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add("Content-Type", "application/octet-stream")
        h.add("Docker-Content-Digest", d.description)
        h.add("ETag", d.etag)
        h.add("Cache-Control", "max-age=31536000, immutable")
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        return h
    }

    /// Serves a cached blob; false on a miss. Cheap (open + fstat): runs on the loop.
    func serveCached(_ d: Digest, _ responder: HTTPResponder) -> Bool {
        guard let hit = hitResponse(d, headers: BlobService.headers(d)) else { return false }
        responder.respond(hit)
        return true
    }

    private func hitResponse(_ d: Digest, headers: HTTPHeaders) -> HTTPResponse? {
        guard let blob = store.open(d) else { return nil }
        var h = headers
        h.add("X-Anchorage-Cache", "HIT")
        return HTTPResponse(status: .ok, headers: h, body: HTTPBody(blob), cacheStatus: .hit)
    }

    func serve(_ upstream: RegistryUpstream, _ name: RepositoryName, _ d: Digest, method: HTTPMethod, _ request: HTTPRequest? = nil, _ responder: HTTPResponder) {
        if serveCached(d, responder) { return }
        if method == .head {
            pool.submit(key: upstream.name) { [self] in responder.respond(headFromStore(d) ?? headFromUpstream(upstream, name, d)) }
            return
        }
        if let tier, tier.s3.config.redirect {
            // The bucket answers the client itself when it has the blob.
            pool.submit(key: upstream.name) { [self] in
                if let url = tier.redirectURL(d) { return responder.respond(BlobService.redirect(d, to: url)) }
                fetchMiss(upstream, name, d, request, responder)
            }
            return
        }
        fetchMiss(upstream, name, d, request, responder)
    }

    static func redirect(_ d: Digest, to url: String) -> HTTPResponse {
        var h = HTTPHeaders()
        h.add("Location", url)
        h.add("Docker-Content-Digest", d.description)
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        return HTTPResponse(status: .movedTemporarily, headers: h, body: .empty)
    }

    private func fetchMiss(_ upstream: RegistryUpstream, _ name: RepositoryName, _ d: Digest, _ request: HTTPRequest?, _ responder: HTTPResponder) {
        // The store or the owner node may have what the upstream cannot give now.
        if tier == nil, peers == nil, let refusal = upstream.breaker.refusal, !inFlightHas(d) {
            return responder.respond(RegistryError.upstream(refusal, unknown: .blobUnknown, upstream: upstream.name).response)
        }
        let path = "\(name.value)/blobs/\(d)"
        var peer: PeerRoute?
        if peers != nil, let request, request.headers[PeerFetcher.header] == nil {
            peer = PeerRoute(path: "/v2/\(path)?ns=\(urlQueryEscape(upstream.name))",
                             headers: request.headers["Authorization"].map { ["Authorization: \($0)"] } ?? [])
        }
        serveOrFetch(d, source: upstream.name, headers: BlobService.headers(d), responder, peer: peer,
                     error: { RegistryError.upstream($0, unknown: .blobUnknown, upstream: upstream.name).response },
                     fetch: { shared in upstream.request("GET", path: path, repository: name, accept: nil, sink: shared) })
    }

    /// The shared miss path for anything content-addressed (image layers,
    /// chart archives): a hit is served from the store; otherwise exactly one
    /// `fetch` runs on a thread of its own while every asking client follows
    /// the shared fetch, verified before its tail is released.
    func serveOrFetch(_ d: Digest, source: String, headers: HTTPHeaders, _ responder: HTTPResponder, peer: PeerRoute? = nil,
                      error: @escaping @Sendable (UpstreamError) -> HTTPResponse,
                      fetch: @escaping @Sendable (SharedFetch) -> Result<ResponseHead, UpstreamError>) {
        switch join(d, source: source) {
        case .hit:
            responder.respond(hitResponse(d, headers: headers) ?? .text(.notFound, "evicted while being requested; retry"))
        case .busy:
            responder.respond(error(.tooManyFetches))
        case .failed:
            responder.respond(error(.protocolError("cache cannot store new blobs (see the mirror's log)")))
        case .follow(let shared):
            counters.coalescedFollowers.add(1, ordering: .relaxed)
            respondWhenHeadKnown(shared, headers, responder, cache: .coalesced, error: error)
        case .lead(let shared):
            fetchThreads.submit { [inFlight, self] in
                let result = fetchThroughTiers(d, shared, peer: peer, fetch)
                shared.finish(result)
                inFlight.remove(d, source: source)
                if case .failure(let e) = result {
                    Log.warn("fetch failed", ["source": source, "digest": d.description, "error": e.description, "class": e.kind])
                }
            }
            // The leader's head is handed to the loop from the fetch thread,
            // which then pauses (at most 5 ms) until the loop has sent it:
            // on a small machine the fetch thread and the upstream otherwise
            // keep every core busy and the woken loop waits for a slice.
            respondWhenHeadKnown(shared, headers, responder, cache: .miss, error: error, handoff: .yieldingToLoop)
        }
    }

    /// Synchronous form for sync: makes `d` local (one fetch shared with any
    /// concurrent client), returning the bytes this call transferred.
    func fetchNow(_ d: Digest, source: String, fetch: @escaping @Sendable (SharedFetch) -> Result<ResponseHead, UpstreamError>) -> Result<Int64, UpstreamError> {
        if store.contains(d) { return .success(0) }
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<UpstreamError?>(nil)
        var transferred: Int64 = 0
        var joined = join(d, source: source)
        // Sync waits for a slot rather than failing: it runs a few at a time anyway.
        for _ in 0..<600 {
            guard case .busy = joined else { break }
            usleep(100_000)
            joined = join(d, source: source)
        }
        switch joined {
        case .hit:
            return .success(0)
        case .busy:
            return .failure(.tooManyFetches)
        case .failed:
            return .failure(.protocolError("cache cannot store new blobs"))
        case .follow(let shared):
            shared.whenFinished { e in
                outcome.withLock { $0 = e }
                done.signal()
            }
        case .lead(let shared):
            let result = fetchThroughTiers(d, shared, peer: nil, fetch)
            shared.finish(result)
            inFlight.remove(d, source: source)
            shared.whenFinished { e in
                outcome.withLock { $0 = e }
                done.signal()
            }
            transferred = shared.length
        }
        done.wait()
        if let e = outcome.withLock({ $0 }) { return .failure(e) }
        return .success(transferred)
    }

    /// A leader's transfer: from the object store when it has `d`, else
    /// from the cluster node that owns `d`, else `fetch` (the upstream),
    /// whose verified result is then copied into the store for the others.
    private func fetchThroughTiers(_ d: Digest, _ shared: SharedFetch, peer: PeerRoute?,
                                   _ fetch: @Sendable (SharedFetch) -> Result<ResponseHead, UpstreamError>) -> Result<ResponseHead, UpstreamError> {
        if let tier, case .found(let result) = tier.fetch(d, into: shared) {
            // An object whose bytes do not hash to its name (damaged in the
            // store) is removed, so the next request goes to the upstream.
            shared.whenFinished { failure in if case .digestMismatch? = failure { tier.remove(d) } }
            return result
        }
        if let peers, let peer, case .found(let result) = peers.fetch(d, path: peer.path, headers: peer.headers, into: shared) { return result }
        counters.upstreamBlobFetches.add(1, ordering: .relaxed)
        // A large blob goes into the bucket in parts while it streams here.
        let streamed = tier.map { StreamingCopy.start($0, d, shared) }
        let result = fetch(shared)
        if let tier, case .success(let head) = result, head.status == 200 {
            // Runs once `finish` verified and committed the blob locally.
            shared.whenFinished { failure in
                if failure == nil, streamed?.value != true { tier.copyToStore(d) }
            }
        }
        return result
    }

    /// Leads or follows the fetch of `d` (a new `SharedFetch` if none runs).
    private func join(_ d: Digest, source: String) -> InFlightTable.Join {
        inFlight.join(d, source: source, store: store, create: { SharedFetch(digest: d, store: store, upstreamName: source, counters: counters) })
    }

    private func inFlightHas(_ d: Digest) -> Bool {
        inFlight.contains(d)
    }

    /// How a growing body's head reaches the loop: a follower's callback just
    /// hands it over; the leader's fetch thread pauses until it is sent.
    private enum Handoff { case plain, yieldingToLoop }

    private func respondWhenHeadKnown(_ shared: SharedFetch, _ headers: HTTPHeaders, _ responder: HTTPResponder, cache: CacheResult,
                                      error: @escaping @Sendable (UpstreamError) -> HTTPResponse, handoff: Handoff = .plain) {
        shared.whenHeadKnown { result in
            switch result {
            case .success(let length):
                var h = headers
                h.add("X-Anchorage-Cache", cache.headerValue)
                let response = HTTPResponse(status: .ok, headers: h, body: .stream(shared, offset: 0, length: length), cacheStatus: cache)
                switch handoff {
                case .plain: responder.respond(response)
                case .yieldingToLoop: responder.respondYieldingToLoop(response, timeout: 0.005)
                }
            case .failure(let e):
                responder.respond(error(e))
            }
        }
    }

    /// HEAD of a blob the object store holds (nil: ask the upstream).
    private func headFromStore(_ d: Digest) -> HTTPResponse? {
        guard let size = tier?.size(d) else { return nil }
        var h = BlobService.headers(d)
        h.add("X-Anchorage-Cache", "MISS")
        return HTTPResponse(status: .ok, headers: h, body: .lengthOnly(size), cacheStatus: .miss)
    }

    /// HEAD of an uncached blob: ask the upstream, fetch nothing.
    private func headFromUpstream(_ upstream: RegistryUpstream, _ name: RepositoryName, _ d: Digest) -> HTTPResponse {
        let sink = CollectingSink(limit: 0)
        switch upstream.request("HEAD", path: "\(name.value)/blobs/\(d)", repository: name, accept: nil, sink: sink) {
        case .failure(let e):
            return RegistryError.upstream(e, unknown: .blobUnknown, upstream: upstream.name).response
        case .success(let head):
            guard head.status == 200, let len = head.headers["Content-Length"].flatMap({ Int64($0) }) else {
                return RegistryError.upstream(UpstreamError.from(status: head.status, headers: head.headers), unknown: .blobUnknown, upstream: upstream.name).response
            }
            var h = BlobService.headers(d)
            h.add("X-Anchorage-Cache", "MISS")
            return HTTPResponse(status: .ok, headers: h, body: .lengthOnly(len), cacheStatus: .miss)
        }
    }
}
