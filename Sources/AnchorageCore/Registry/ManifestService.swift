import Foundation
import Synchronization

/// `GET|HEAD /v2/<name>/manifests/<reference>` with the freshness policy:
///
/// | situation                                | action                                       |
/// |------------------------------------------|----------------------------------------------|
/// | digest reference, cached                 | serve; never ask upstream                    |
/// | tag, checked within its TTL              | serve (hit)                                  |
/// | tag 404'd upstream within `negative_ttl` | 404 without asking                           |
/// | tag past TTL, Docker Hub                 | HEAD upstream; same digest → serve, else GET |
/// | tag past TTL, other upstreams            | GET with If-None-Match: 304 → serve, 200 → the new manifest |
/// | upstream outage (conn, timeout, 5xx, 429, breaker open) and cached | serve stale, `Warning: 110` |
/// | upstream outage, nothing cached          | 503 UNAVAILABLE / 429 TOOMANYREQUESTS        |
///
/// Manifests are small: fetched whole, verified (the digest asked for, or
/// the upstream's `Docker-Content-Digest` for a tag), stored, then served
/// byte-exact with the upstream's media type.
/// A manifest whose bytes hashed to the digest they had to have.
struct VerifiedManifest: Sendable {
    let digest: Digest
    let body: [UInt8]
    let mediaType: String
}

final class ManifestService: Sendable {
    static let maxManifestBytes = 4 << 20
    static let defaultAccept = [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ].joined(separator: ", ")

    let store: FileBlobStore
    let tags: TagIndex
    /// Manifests are what fleets ask for most often; hits come from memory.
    let hot = HotBlobs(budget: 16 << 20)
    let counters: Counters
    let defaultTTL: Int64
    let negativeTTL: Int64
    private let negative = Mutex<[String: Int64]>([:])
    /// A fetched manifest's files are written here, after its client has the
    /// verified bytes from memory: the three fsyncs (blob, media type, tag;
    /// milliseconds) would sit on every cold manifest's response path. Serial, so a tag
    /// record never lands before its manifest; `finishWrites` waits for it.
    private let writes = DispatchQueue(label: "anchorage.manifest-writes")
    /// The object store shared with other nodes: manifests by digest are
    /// asked there before the upstream, and copied there once kept.
    let tier: ObjectStoreTier?

    init(store: FileBlobStore, tags: TagIndex, counters: Counters, defaultTTLMillis: Int64, negativeTTLMillis: Int64, tier: ObjectStoreTier? = nil) {
        self.tier = tier
        self.store = store
        self.tags = tags
        self.counters = counters
        defaultTTL = defaultTTLMillis
        negativeTTL = negativeTTLMillis
    }

    /// Waits for the manifest files queued so far (graceful shutdown).
    func finishWrites() { writes.sync {} }

    /// Blocking: run on a worker.
    func get(_ upstream: RegistryUpstream, _ name: RepositoryName, _ ref: Reference, accept: String?) -> HTTPResponse {
        switch ref {
        case .digest(let d):
            if let r = cachedResponse(d, mediaType: nil, cache: .hit) { return r }
            if let tier, let found = tier.fetchWhole(d, limit: ManifestService.maxManifestBytes) {
                let outcome = verify(.success(found.head), found.sink, upstream, name, ref: ref, expected: d)
                if case .verified = outcome { return settle(outcome, upstream, name, tag: nil, accept: accept, stale: nil) }
            }
            return fetch(upstream, name, ref: ref, expected: d, accept: accept, tag: nil, stale: nil)
        case .tag(let t):
            return byTag(upstream, name, t, accept: accept)
        }
    }

    private func byTag(_ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, accept: String?) -> HTTPResponse {
        let now = CacheIndex.nowMillis()
        let ttl = freshFor(upstream)
        let record = tags.get(upstream: upstream.name, name: name, tag: tag)
        let cached = record.flatMap { rec in store.contains(rec.digest) || hot.get(rec.digest) != nil ? rec : nil }
        if let rec = cached, !ManifestService.accepts(accept, rec.mediaType) {
            // The cached manifest is of a type this client does not take:
            // ask the upstream with its Accept, and leave the tag's record
            // and the negative cache to the clients that take it.
            return fetch(upstream, name, ref: .tag(tag), expected: nil, accept: accept, tag: nil, stale: nil)
        }
        if let rec = cached, now - rec.checkedAt < ttl, let r = cachedResponse(rec.digest, mediaType: rec.mediaType, cache: .hit) {
            return r
        }
        if let until = negative.withLock({ $0[negativeKey(upstream, name, tag, accept: accept)] }), until > now {
            return RegistryError(.manifestUnknown, .notFound, "manifest unknown to the upstream registry (cached answer)", detail: tag.value).response
        }
        if let rec = cached {
            if upstream.isDockerHub {
                if let r = revalidateWithHead(upstream, name, tag, rec, accept: accept, now: now) { return r }
            } else {
                return revalidateConditionally(upstream, name, tag, rec, accept: accept, now: now)
            }
        }
        return fetch(upstream, name, ref: .tag(tag), expected: nil, accept: accept, tag: tag, stale: cached)
    }

    /// Whether a client's `Accept` takes `mediaType` (no Accept, or `*/*`, takes anything).
    static func accepts(_ accept: String?, _ mediaType: String) -> Bool {
        guard let accept, !accept.isEmpty else { return true }
        return accept.split(separator: ",").contains { item in
            let type = item.split(separator: ";").first.map { $0.trimmed(" ").lowercased() } ?? ""
            return type == "*/*" || type == mediaType.lowercased()
        }
    }

    /// Docker Hub: a HEAD, which it does not count against pull limits (a
    /// GET, even one answered 304, is a pull). The answer if the tag still
    /// names the cached digest or the upstream said no; nil: fetch it whole.
    private func revalidateWithHead(_ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, _ rec: TagRecord,
                                    accept: String?, now: Int64) -> HTTPResponse? {
        let sink = CollectingSink(limit: 0)
        switch upstream.request("HEAD", path: "\(name.value)/manifests/\(tag.value)", repository: name, accept: accept ?? ManifestService.defaultAccept, sink: sink) {
        case .failure(let e) where e.isOutage:
            return stale(rec, upstream, e)
        case .failure(let e):
            return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
        case .success(let head):
            guard head.status == 200 else { return refused(head, upstream, name, tag: tag, accept: accept, stale: rec) }
            guard head.headers["Docker-Content-Digest"].flatMap(Digest.init) == rec.digest else { return nil }
            return confirmed(rec, upstream, name, tag, now: now)
        }
    }

    /// Other upstreams: one conditional GET (`If-None-Match` with the cached
    /// digest as entity tag). A 304 confirms the cache; a 200 carries the
    /// tag's new manifest, so a moved tag costs one round trip, not a HEAD
    /// and then a GET. An upstream that ignores the condition sends the
    /// whole manifest, which is verified like any fetch.
    private func revalidateConditionally(_ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, _ rec: TagRecord,
                                         accept: String?, now: Int64) -> HTTPResponse {
        let sink = CollectingSink(limit: ManifestService.maxManifestBytes)
        let result = upstream.request("GET", path: "\(name.value)/manifests/\(tag.value)", repository: name, accept: accept ?? ManifestService.defaultAccept,
                                      extraHeaders: ["If-None-Match: \(rec.digest.etag)"], sink: sink)
        if case .success(let head) = result, head.status == 304 {
            // A 304 that names another digest is not believed: fetch it whole.
            let named = head.headers["Docker-Content-Digest"].flatMap(Digest.init)
            if named == nil || named == rec.digest, let r = confirmed(rec, upstream, name, tag, now: now) { return r }
            return fetch(upstream, name, ref: .tag(tag), expected: nil, accept: accept, tag: tag, stale: rec)
        }
        return settle(verify(result, sink, upstream, name, ref: .tag(tag), expected: nil), upstream, name, tag: tag, accept: accept, stale: rec)
    }

    private func fetch(_ upstream: RegistryUpstream, _ name: RepositoryName, ref: Reference, expected: Digest?, accept: String?, tag: Tag?, stale cached: TagRecord?) -> HTTPResponse {
        let sink = CollectingSink(limit: ManifestService.maxManifestBytes)
        let result = upstream.request("GET", path: "\(name.value)/manifests/\(ref)", repository: name, accept: accept ?? ManifestService.defaultAccept, sink: sink)
        return settle(verify(result, sink, upstream, name, ref: ref, expected: expected), upstream, name, tag: tag, accept: accept, stale: cached)
    }

    /// What a manifest GET came to.
    enum Outcome {
        case verified(VerifiedManifest)
        case failed(UpstreamError)
        /// The upstream answered with an error status.
        case refused(ResponseHead)
        case tooLarge
        case mismatch(expected: Digest, actual: Digest)

        /// The outcome as an upstream error, for callers that only need why it failed.
        var result: Result<VerifiedManifest, UpstreamError> {
            switch self {
            case .verified(let m): .success(m)
            case .failed(let e): .failure(e)
            case .refused(let head): .failure(UpstreamError.from(status: head.status, headers: head.headers))
            case .tooLarge: .failure(.protocolError("upstream manifest larger than \(ManifestService.maxManifestBytes) bytes"))
            case .mismatch(let want, let actual): .failure(.digestMismatch(expected: want.description, actual: actual.description))
            }
        }
    }

    /// One GET of a manifest, verified (`verify`): serving and sync fetch
    /// manifests through this.
    func fetchVerified(_ upstream: RegistryUpstream, _ name: RepositoryName, _ ref: Reference, expected: Digest?, accept: String? = nil) -> Outcome {
        let sink = CollectingSink(limit: ManifestService.maxManifestBytes)
        let result = upstream.request("GET", path: "\(name.value)/manifests/\(ref)", repository: name, accept: accept ?? ManifestService.defaultAccept, sink: sink)
        return verify(result, sink, upstream, name, ref: ref, expected: expected)
    }

    /// A manifest GET's answer checked: the bytes must hash to the digest
    /// asked for, else to the one the upstream claims.
    private func verify(_ result: Result<ResponseHead, UpstreamError>, _ sink: CollectingSink, _ upstream: RegistryUpstream, _ name: RepositoryName,
                        ref: Reference, expected: Digest?) -> Outcome {
        switch result {
        case .failure(let e):
            return .failed(e)
        case .success(let head):
            guard head.status == 200 else { return .refused(head) }
            guard !sink.overflowed else { return .tooLarge }
            let body = sink.body
            let want = expected ?? head.headers["Docker-Content-Digest"].flatMap(Digest.init)
            let actual = Hasher.digest(body, want?.algorithm ?? .sha256)
            if let want, want != actual {
                counters.recordMismatch(source: "\(upstream.name)/\(name.value)", expected: want.description, actual: actual.description)
                Log.error("digest mismatch: manifest discarded", ["upstream": upstream.name, "name": name.value, "reference": ref.description, "expected": want.description, "actual": actual.description])
                return .mismatch(expected: want, actual: actual)
            }
            return .verified(VerifiedManifest(digest: actual, body: body, mediaType: ManifestService.mediaType(head.headers["Content-Type"], body)))
        }
    }

    /// Stores a verified manifest, its media type and, for a tag, the tag's
    /// record (in that order: a tag never names a manifest not yet stored).
    @discardableResult
    func keep(_ m: VerifiedManifest, _ upstream: RegistryUpstream, _ name: RepositoryName, tag: Tag?) -> Bool {
        guard store.put(m.body, digest: m.digest) else {
            // Not cacheable (disk full?): the client had a verified answer.
            Log.warn("manifest not cached", ["digest": m.digest.description])
            return false
        }
        store.setMediaType(m.mediaType, for: m.digest)
        if let tag { tags.put(upstream: upstream.name, name: name, tag: tag, record: TagRecord(digest: m.digest, mediaType: m.mediaType, checkedAt: CacheIndex.nowMillis())) }
        return true
    }

    /// A manifest GET's outcome answered: verified, served and stored; or
    /// the cached record served stale through an outage; or the error.
    private func settle(_ outcome: Outcome, _ upstream: RegistryUpstream, _ name: RepositoryName, tag: Tag?, accept: String?, stale cached: TagRecord?) -> HTTPResponse {
        switch outcome {
        case .failed(let e):
            if e.isOutage, let rec = cached { return stale(rec, upstream, e) }
            return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
        case .refused(let head):
            return refused(head, upstream, name, tag: tag, accept: accept, stale: cached)
        case .tooLarge:
            return RegistryError(.manifestInvalid, .badGateway, "upstream manifest larger than \(ManifestService.maxManifestBytes) bytes").response
        case .mismatch(let want, let actual):
            return RegistryError(.unavailable, .badGateway, "upstream sent a manifest whose digest does not match",
                                 detail: "expected \(want), got \(actual)").response
        case .verified(let m):
            // Until the files land, requests by digest are answered from here.
            hot.put(m.digest, m.body, mediaType: m.mediaType)
            if let tag {
                let prefix = negativeKey(upstream, name, tag, accept: nil)
                negative.withLock { n in n = n.filter { !$0.key.hasPrefix(prefix) } }
                // The next request for the tag (a GET after a HEAD) finds it
                // in memory, not an upstream fetch, while the files are written.
                tags.remember(upstream: upstream.name, name: name, tag: tag,
                              record: TagRecord(digest: m.digest, mediaType: m.mediaType, checkedAt: CacheIndex.nowMillis()))
            }
            writes.async { [self] in
                if keep(m, upstream, name, tag: tag) { tier?.copyToStore(m.digest, contentType: m.mediaType) }
            }
            return response(body: .bytes(m.body), digest: m.digest, mediaType: m.mediaType, cache: m.digest == cached?.digest ? .revalidated : .miss)
        }
    }

    /// The upstream still names the cached digest: the tag is fresh again.
    private func confirmed(_ rec: TagRecord, _ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, now: Int64) -> HTTPResponse? {
        tags.put(upstream: upstream.name, name: name, tag: tag, record: TagRecord(digest: rec.digest, mediaType: rec.mediaType, checkedAt: now))
        return cachedResponse(rec.digest, mediaType: rec.mediaType, cache: .revalidated)
    }

    /// A manifest request the upstream answered with an error status: the
    /// cached record served stale through an outage, a missing tag
    /// remembered for `negative_ttl`, else the error in the registry's format.
    private func refused(_ head: ResponseHead, _ upstream: RegistryUpstream, _ name: RepositoryName, tag: Tag?, accept: String?, stale cached: TagRecord?) -> HTTPResponse {
        let e = UpstreamError.from(status: head.status, headers: head.headers)
        if e.isOutage, let rec = cached { return stale(rec, upstream, e) }
        if e == .notFound, let tag {
            negative.withLock { $0[negativeKey(upstream, name, tag, accept: accept)] = CacheIndex.nowMillis() + negativeTTL }
        }
        return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
    }

    /// A 404 is remembered for what was asked: the tag and the Accept it
    /// was asked with (an upstream answers 404 for an index to a client
    /// that takes only image manifests). With `accept` nil, the prefix
    /// every entry of the tag starts with.
    private func negativeKey(_ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, accept: String?) -> String {
        "\(upstream.name)/\(name.value):\(tag.value)|" + (accept ?? "")
    }

    private func stale(_ rec: TagRecord, _ upstream: RegistryUpstream, _ e: UpstreamError) -> HTTPResponse {
        guard var r = cachedResponse(rec.digest, mediaType: rec.mediaType, cache: .stale) else {
            return RegistryError.upstream(e, unknown: .manifestUnknown, upstream: upstream.name).response
        }
        counters.staleServed.add(1, ordering: .relaxed)
        r.headers.add("Warning", "110 anchorage \"Response is Stale\"")
        Log.warn("served stale manifest", ["upstream": upstream.name, "digest": rec.digest.description, "reason": e.kind])
        return r
    }

    /// A manifest by digest from the cache, or nil: no upstream, no blocking
    /// beyond an open and a small read, so the loop can answer it directly.
    func cachedByDigest(_ d: Digest) -> HTTPResponse? {
        cachedResponse(d, mediaType: nil, cache: .hit)
    }

    /// A tag checked within its TTL whose manifest is cached, or nil. Reads
    /// only memory and at most one small file, so the loop can answer it:
    /// anything that needs the upstream or the tag's file goes to a worker.
    func cachedFreshTag(_ upstream: RegistryUpstream, _ name: RepositoryName, _ tag: Tag, accept: String?) -> HTTPResponse? {
        guard let rec = tags.memoized(upstream: upstream.name, name: name, tag: tag), ManifestService.accepts(accept, rec.mediaType) else { return nil }
        guard CacheIndex.nowMillis() - rec.checkedAt < freshFor(upstream) else { return nil }
        return cachedResponse(rec.digest, mediaType: rec.mediaType, cache: .hit)
    }

    /// How long a checked tag is served without asking: the registry's
    /// `manifest_ttl`, else the cache-wide one (ms).
    private func freshFor(_ upstream: RegistryUpstream) -> Int64 {
        upstream.config.manifestTTL.map { $0.milliseconds } ?? defaultTTL
    }

    /// The media type to serve: the caller's (a tag record's), the stored
    /// one, else the manifest's own `mediaType` field.
    private func mediaType(_ d: Digest, given: String?, body: @autoclosure () -> [UInt8]) -> String {
        given ?? store.mediaType(d) ?? ManifestService.mediaType(nil, body())
    }

    private func cachedResponse(_ d: Digest, mediaType: String?, cache: CacheResult) -> HTTPResponse? {
        if let m = hot.get(d) {
            store.touch(d)
            return response(body: .bytes(m.bytes), digest: (m.digestText, m.etag), mediaType: mediaType ?? m.mediaType, cache: cache)
        }
        guard let f = store.open(d) else { return nil }
        guard let bytes = f.readAll(limit: HotBlobs.maxEntryBytes) else {
            // Large (a big index): served from the file as it is.
            let type = self.mediaType(d, given: mediaType, body: f.readAll(limit: ManifestService.maxManifestBytes) ?? [])
            return response(body: HTTPBody(f), digest: d, mediaType: type, cache: cache)
        }
        let type = self.mediaType(d, given: mediaType, body: bytes)
        guard hot.put(d, bytes, mediaType: type) else {
            // The disk copy no longer hashes to its name: never serve it;
            // the caller fetches a good copy, which replaces it.
            Log.error("cached manifest does not match its digest: refetching", ["digest": d.description])
            return nil
        }
        return response(body: .bytes(bytes), digest: d, mediaType: type, cache: cache)
    }

    private func response(body: HTTPBody, digest: Digest, mediaType: String, cache: CacheResult) -> HTTPResponse {
        response(body: body, digest: (digest.description, digest.etag), mediaType: mediaType, cache: cache)
    }

    /// `digest` as text and quoted: a hot entry keeps both made.
    private func response(body: HTTPBody, digest: (text: String, etag: String), mediaType: String, cache: CacheResult) -> HTTPResponse {
        var h = HTTPHeaders()
        h.reserveCapacity(5)
        h.add("Content-Type", mediaType)
        h.add("Docker-Content-Digest", digest.text)
        h.add("ETag", digest.etag)
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        h.add("X-Anchorage-Cache", cache.headerValue)
        return HTTPResponse(status: .ok, headers: h, body: body, cacheStatus: cache)
    }

    /// The upstream's Content-Type if it is a plain media type, else the
    /// manifest's own `mediaType` field.
    static func mediaType(_ header: String?, _ body: [UInt8]) -> String {
        if let h = header?.split(separator: ";").first?.trimmed(" "), !h.isEmpty,
           h.utf8.allSatisfy({ $0 > 32 && $0 < 127 }), h != "application/json", h != "text/plain" {
            return h
        }
        if let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
           let t = obj["mediaType"] as? String, t.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) {
            return t
        }
        return "application/vnd.oci.image.manifest.v1+json"
    }
}
