import Foundation

/// A `[hosted "NAME"]` namespace: the push side of the distribution spec
/// and pulls of what was pushed, never anything upstream. Reads follow the
/// access gate; every write needs a signed-in user the section names in
/// `writers` (401 without one, 403 `DENIED` for another user).
///
/// Blob uploads stream into a `BlobWriter` of the hosted store, hashed as
/// they arrive; the final `PUT ?digest=` commits only a matching digest.
/// Manifests are stored as their exact bytes once every blob and child
/// manifest they name is in the repository.
final class HostedRepository: Repository {
    let config: HostedConfig
    let store: HostedStore
    let uploads: UploadTable
    let pool: WorkerPool
    /// With an object store: blobs this node has no copy of are streamed
    /// from the bucket into its disk, one fetch however many clients ask.
    let firstReads: BlobService?

    /// Manifests larger than this are refused (distribution's limit too).
    static let maxManifestBytes = 4 << 20

    init(config: HostedConfig, store: HostedStore, uploads: UploadTable, pool: WorkerPool, firstReads: BlobService? = nil) {
        self.config = config
        self.store = store
        self.uploads = uploads
        self.pool = pool
        self.firstReads = firstReads
    }

    var name: String { config.name }
    private var ns: String { config.name }
    private var poolKey: String { "hosted:\(config.name)" }

    func normalize(_ name: RepositoryName) -> RepositoryName { name }

    func handle(_ route: RegistryRoute, _ request: HTTPRequest, _ responder: HTTPResponder) {
        if !request.method.isRead, let refusal = writeRefusal(request) { return responder.respond(refusal) }
        // With an object store the pushed content lives there: a write it
        // cannot take now is refused before any byte is received.
        if !request.method.isRead, let down = store.unavailable { return responder.respond(HostedRepository.storeDown(down)) }
        switch (route, request.method) {
        case (.base, _):
            responder.respond(RegistryHandler.baseResponse)
        case (.blob(let name, let d), .get), (.blob(let name, let d), .head):
            guard let firstReads else { return responder.respond(blobResponse(name, d)) }
            pool.submit(key: poolKey) { [self] in
                guard store.hasLayer(ns, name, d) else {
                    return responder.respond(notFound(RegistryError(.blobUnknown, .notFound, "blob unknown to repository", detail: d.description)))
                }
                if let local = store.content.open(d) { return responder.respond(blobFound(d, HTTPBody(local))) }
                if request.method == .head {
                    guard let size = store.stat(d) else { return responder.respond(notFound(RegistryError(.blobUnknown, .notFound, "blob unknown to repository", detail: d.description))) }
                    return responder.respond(blobFound(d, .lengthOnly(size)))
                }
                var headers = BlobService.headers(d)
                headers.add("X-Anchorage-Cache", "HOSTED")
                firstReads.serveOrFetch(d, source: "hosted:\(ns)", headers: headers, responder, error: { [store] e in
                    store.unavailable.map(HostedRepository.storeDown)
                        ?? RegistryError(.blobUnknown, .notFound, "blob unknown to repository (\(e))", detail: d.description).response
                }, fetch: { [store] sharedFetch in store.fetchShared(d, into: sharedFetch) })
            }
        case (.blob(let name, let d), .delete):
            pool.submit(key: poolKey) { [self] in
                responder.respond(store.unlinkLayer(ns, name, d) ? HostedRepository.accepted()
                    : notFound(RegistryError(.blobUnknown, .notFound, "blob unknown to repository", detail: d.description)))
            }
        case (.uploads(let name, nil), .post):
            guard store.shared != nil else { return startUpload(name, request, responder) }
            // A push starts only when the store that will hold it answers.
            pool.submit(key: poolKey) { [self] in
                if let down = store.probe() { return responder.respond(HostedRepository.storeDown(down)) }
                startUpload(name, request, responder)
            }
        case (.uploads(let name, let id?), .get):
            guard let session = uploads.peek(id.value, ns, name) else {
                return responder.respond(RegistryError(.blobUploadUnknown, .notFound, "blob upload unknown", detail: id.value).response)
            }
            responder.respond(uploadProgress(session, status: .noContent))
        case (.uploads(let name, let id?), .patch):
            appendToUpload(name, id, request, responder)
        case (.uploads(let name, let id?), .put):
            finishUpload(name, id, request, responder)
        case (.uploads(let name, let id?), .delete):
            switch uploads.claim(id.value, ns, name) {
            case .failure(let e): responder.respond(e.response)
            case .success(let session):
                uploads.remove(session, cancel: true)
                responder.respond(HTTPResponse(status: .noContent, headers: HostedRepository.apiHeaders()))
            }
        case (.manifest(let name, let ref), .get), (.manifest(let name, let ref), .head):
            read(responder) { [self] in manifestResponse(name, ref) }
        case (.manifest(let name, let ref), .put):
            putManifest(name, ref, request, responder)
        case (.manifest(let name, let ref), .delete):
            pool.submit(key: poolKey) { [self] in
                switch deleteManifest(name, ref) {
                case .success: responder.respond(HostedRepository.accepted())
                case .failure(let e): responder.respond(e.response)
                }
            }
        case (.referrers(let name, let d), .get), (.referrers(let name, let d), .head):
            let artifactType = request.queryValue("artifactType")
            pool.submit(key: poolKey) { [self] in responder.respond(referrers(name, d, artifactType: artifactType)) }
        case (.tags(let name), .get), (.tags(let name), .head):
            read(responder) { [self] in
                let tags = store.tags(ns, name)
                if tags.isEmpty && store.revisions(ns, name).isEmpty {
                    return notFound(RegistryError(.nameUnknown, .notFound, "repository name not known to registry", detail: "\(ns)/\(name.value)"))
                }
                return TagPage(request).response(fullName(name), tags: tags.map(\.value))
            }
        default:
            var e = RegistryError(.unsupported, .methodNotAllowed, "\(request.method) is not supported here")
            e.detail = request.path
            e.allow = HostedRepository.allowed(route)
            responder.respond(e.response)
        }
    }

    /// Runs a read on this thread when the records are local files, on a
    /// worker when each answer asks the object store.
    private func read(_ responder: HTTPResponder, _ answer: @escaping @Sendable () -> HTTPResponse) {
        guard store.shared != nil else { return responder.respond(answer()) }
        pool.submit(key: poolKey) { responder.respond(answer()) }
    }

    /// A "not found" that may only mean the object store did not answer.
    private func notFound(_ e: RegistryError) -> HTTPResponse {
        store.unavailable.map(HostedRepository.storeDown) ?? e.response
    }

    /// A failed write: 503 when the object store is down, else 507 (the disk).
    private func storageFailure(_ what: String) -> HTTPResponse {
        store.unavailable.map(HostedRepository.storeDown)
            ?? RegistryError(.unknown, .insufficientStorage, "\(what) (see the log)").response
    }

    static func storeDown(_ why: String) -> HTTPResponse {
        RegistryError(.unavailable, .serviceUnavailable, "the object store holding hosted content is unavailable: \(why)").response
    }

    /// What each resource takes, for a 405's `Allow`.
    static func allowed(_ route: RegistryRoute) -> String {
        switch route {
        case .base, .tags, .referrers: "GET, HEAD"
        case .blob: "GET, HEAD, DELETE"
        case .uploads(_, nil): "POST"
        case .uploads: "GET, PATCH, PUT, DELETE"
        case .manifest: "GET, HEAD, PUT, DELETE"
        }
    }

    // MARK: access

    /// Why this request may not write, or nil when it may.
    private func writeRefusal(_ request: HTTPRequest) -> HTTPResponse? {
        guard let user = request.user else {
            return AccessGate.challenge("pushing to \(ns) needs a signed-in user with write access")
        }
        guard config.mayWrite(user) else {
            return RegistryError(.denied, .forbidden, "user \(user) may not write to \(ns)", detail: ns).response
        }
        return nil
    }

    /// Bytes the namespace may still take.
    private func quotaLeft() -> Int64 {
        guard let max = config.maxSize?.bytes else { return .max }
        return max - store.usage(ns)
    }

    private func quotaRefusal(_ bytes: Int64) -> HTTPResponse {
        RegistryError(.denied, .forbidden, "quota exceeded: \(ns) holds \(store.usage(ns)) of its max_size \(config.maxSize?.description ?? "-"); this push needs \(bytes) more bytes", detail: ns).response
    }

    // MARK: blobs

    private func blobResponse(_ name: RepositoryName, _ d: Digest) -> HTTPResponse {
        guard store.hasLayer(ns, name, d), let blob = store.open(d) else {
            return notFound(RegistryError(.blobUnknown, .notFound, "blob unknown to repository", detail: d.description))
        }
        return blobFound(d, HTTPBody(blob))
    }

    private func blobFound(_ d: Digest, _ body: HTTPBody) -> HTTPResponse {
        var h = BlobService.headers(d)
        h.add("X-Anchorage-Cache", "HOSTED")
        return HTTPResponse(status: .ok, headers: h, body: body, cacheStatus: .hit)
    }

    // MARK: uploads

    private func startUpload(_ name: RepositoryName, _ request: HTTPRequest, _ responder: HTTPResponder) {
        if let text = request.queryValue("mount") {
            guard let d = Digest(text) else {
                return responder.respond(RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(text.prefix(200))).response)
            }
            if let from = request.queryValue("from").flatMap(mountSource), store.hasLayer(from.ns, from.name, d) {
                return pool.submit(key: poolKey) { [self] in
                    let size = store.stat(d) ?? 0
                    if !store.hasLayer(ns, name, d), size > quotaLeft() { return responder.respond(quotaRefusal(size)) }
                    guard store.linkLayer(ns, name, d) else { return responder.respond(storageFailure("cannot link the blob")) }
                    responder.respond(blobCreated(name, d))
                }
            }
            // Not mountable from there: an ordinary upload (202), as the spec says.
        }
        let digest: Digest?
        if let text = request.queryValue("digest") {
            guard let d = Digest(text) else {
                return responder.respond(RegistryError(.digestInvalid, .badRequest, "invalid digest", detail: String(text.prefix(200))).response)
            }
            digest = d
        } else {
            digest = nil
        }
        let left = quotaLeft()
        if case .contentLength(let n) = request.framing, Int64(n) > left { return responder.respond(quotaRefusal(Int64(n))) }
        if left <= 0 { return responder.respond(quotaRefusal(1)) }
        let session: UploadSession
        switch uploads.start(ns, name, store: store.content) {
        case .failure(let e): return responder.respond(e.response)
        case .success(let s): session = s
        }
        guard let digest else {
            // The body of a POST without a digest is not content (the spec's
            // flow sends it with PATCH or PUT).
            uploads.release(session)
            return responder.respond(uploadProgress(session, status: .accepted))
        }
        receive(session, request, responder, limit: left) { [self] in commit(session, digest, responder) }
    }

    /// `?from=` as a hosted repository: `NS/NAME`.
    private func mountSource(_ text: String) -> (ns: String, name: RepositoryName)? {
        guard let slash = text.firstIndex(of: "/"), let name = RepositoryName(text[text.index(after: slash)...]),
              RepositoryName.isValidComponent(Array(text[..<slash].utf8)) else { return nil }
        return (String(text[..<slash]), name)
    }

    private func appendToUpload(_ name: RepositoryName, _ id: UploadID, _ request: HTTPRequest, _ responder: HTTPResponder) {
        let session: UploadSession
        switch uploads.claim(id.value, ns, name) {
        case .failure(let e): return responder.respond(e.response)
        case .success(let s): session = s
        }
        var limit = HostedRepository.sum(session.offset, quotaLeft())
        if let header = request.headers["Content-Range"] {
            // Chunks must come in order: one that does not start where the
            // upload ends is refused with where it ends.
            guard let range = HostedRepository.contentRange(header), range.start == session.offset, range.end >= range.start else {
                uploads.release(session)
                var r = uploadProgress(session, status: .rangeNotSatisfiable)
                r.closeConnection = true
                return responder.respond(r)
            }
            limit = min(limit, range.end + 1)
        }
        if case .contentLength(let n) = request.framing, session.offset + Int64(n) > quotaLeft() {
            uploads.release(session)
            return responder.respond(quotaRefusal(Int64(n)))
        }
        receive(session, request, responder, limit: limit) { [self] in
            uploads.release(session)
            responder.respond(uploadProgress(session, status: .accepted))
        }
    }

    private func finishUpload(_ name: RepositoryName, _ id: UploadID, _ request: HTTPRequest, _ responder: HTTPResponder) {
        guard let text = request.queryValue("digest"), let digest = Digest(text) else {
            return responder.respond(RegistryError(.digestInvalid, .badRequest, "the final PUT needs ?digest= with a valid digest", detail: request.queryValue("digest").map { String($0.prefix(200)) }).response)
        }
        let session: UploadSession
        switch uploads.claim(id.value, ns, name) {
        case .failure(let e): return responder.respond(e.response)
        case .success(let s): session = s
        }
        receive(session, request, responder, limit: HostedRepository.sum(session.offset, quotaLeft())) { [self] in commit(session, digest, responder) }
    }

    /// Reads the request's body into the upload, then runs `then` (on the
    /// loop thread); a body past `limit`, a failed write or a broken body
    /// is answered here.
    private func receive(_ session: UploadSession, _ request: HTTPRequest, _ responder: HTTPResponder, limit: Int64,
                         then: @escaping @Sendable () -> Void) {
        let quota = config.maxSize != nil
        responder.readBody(into: UploadBodyReceiver(session, limit: limit) { [self] receiver, error in
            guard let error else { return then() }
            if receiver.exceeded {
                uploads.remove(session, cancel: true)
                return responder.respond(quota ? quotaRefusal(receiver.limit) : uploadProgress(session, status: .rangeNotSatisfiable))
            }
            if let failure = session.writer.failure {
                uploads.remove(session, cancel: true)
                Log.error("upload failed", ["namespace": ns, "repository": session.name.value, "error": failure])
                return responder.respond(RegistryError(.unknown, .insufficientStorage, "the upload could not be stored: \(failure)").response)
            }
            // The client broke off: what arrived stays, to be resumed.
            uploads.release(session)
            responder.respond(RegistryError(.blobUploadInvalid, .badRequest, "upload body incomplete (\(error))").response)
        })
    }

    /// Verifies and commits an upload on a worker (fsync and rename must
    /// not hold up the loop), then links it into the repository.
    private func commit(_ session: UploadSession, _ digest: Digest, _ responder: HTTPResponder) {
        pool.submit(key: poolKey) { [self] in
            let size = session.offset
            guard digest.algorithm == .sha256 else {
                uploads.remove(session, cancel: true)
                return responder.respond(RegistryError(.digestInvalid, .badRequest, "uploads are verified as sha256", detail: digest.description).response)
            }
            guard session.writer.commit(as: digest) else {
                uploads.remove(session, cancel: true)
                if let computed = session.writer.computed, computed != digest {
                    return responder.respond(RegistryError(.digestInvalid, .badRequest, "the uploaded content's digest is \(computed), not \(digest)", detail: digest.description).response)
                }
                return responder.respond(RegistryError(.unknown, .insufficientStorage, "the upload could not be stored: \(session.writer.failure ?? "error")").response)
            }
            uploads.remove(session, cancel: false)
            if !store.hasLayer(ns, session.name, digest), size > quotaLeft() {
                // Left unlinked: the collector removes it after the grace period.
                return responder.respond(quotaRefusal(size))
            }
            // In the object store before it is linked: the 201 means every node can read it.
            guard store.share(digest), store.linkLayer(ns, session.name, digest) else {
                return responder.respond(storageFailure("cannot store the blob"))
            }
            responder.respond(blobCreated(session.name, digest))
        }
    }

    /// `a + b`, at most `Int64.max`.
    static func sum(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : r
    }

    /// `Content-Range: <start>-<end>` (docker's form; `bytes ` and `/total` tolerated).
    static func contentRange(_ header: String) -> (start: Int64, end: Int64)? {
        var t = Substring(header.trimmed(" "))
        if t.hasPrefix("bytes") { t = t.dropFirst(5).drop { $0 == " " || $0 == "=" } }
        if let slash = t.firstIndex(of: "/") { t = t[..<slash] }
        let parts = t.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int64(parts[0]), let b = Int64(parts[1]), a >= 0 else { return nil }
        return (a, b)
    }

    private func uploadLocation(_ session: UploadSession) -> String {
        "/v2/\(ns)/\(session.name.value)/blobs/uploads/\(session.id)"
    }

    private func uploadProgress(_ session: UploadSession, status: HTTPStatus) -> HTTPResponse {
        var h = HostedRepository.apiHeaders()
        h.add("Location", uploadLocation(session))
        h.add("Docker-Upload-UUID", session.id)
        h.add("Range", "0-\(max(0, session.offset - 1))")
        return HTTPResponse(status: status, headers: h)
    }

    private func blobCreated(_ name: RepositoryName, _ d: Digest) -> HTTPResponse {
        var h = HostedRepository.apiHeaders()
        h.add("Location", "/v2/\(ns)/\(name.value)/blobs/\(d)")
        h.add("Docker-Content-Digest", d.description)
        return HTTPResponse(status: .created, headers: h)
    }

    static func apiHeaders() -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        return h
    }

    static func accepted() -> HTTPResponse { HTTPResponse(status: .accepted, headers: apiHeaders()) }

    // MARK: manifests

    private func fullName(_ name: RepositoryName) -> RepositoryName { RepositoryName("\(ns)/\(name.value)") ?? name }

    private func resolve(_ name: RepositoryName, _ ref: Reference) -> Digest? {
        switch ref {
        case .digest(let d): return store.hasRevision(ns, name, d) ? d : nil
        case .tag(let t): return store.resolve(ns, name, t).flatMap { store.hasRevision(ns, name, $0) ? $0 : nil }
        }
    }

    private func manifestResponse(_ name: RepositoryName, _ ref: Reference) -> HTTPResponse {
        guard let d = resolve(name, ref), let blob = store.open(d) else {
            return notFound(RegistryError(.manifestUnknown, .notFound, "manifest unknown", detail: ref.description))
        }
        let type = store.content.mediaType(d)
            ?? ManifestService.mediaType(nil, blob.readAll(limit: HostedRepository.maxManifestBytes) ?? [])
        var h = HostedRepository.apiHeaders()
        h.add("Content-Type", type)
        h.add("Docker-Content-Digest", d.description)
        h.add("ETag", d.etag)
        h.add("X-Anchorage-Cache", "HOSTED")
        return HTTPResponse(status: .ok, headers: h, body: HTTPBody(blob), cacheStatus: .hit)
    }

    private func putManifest(_ name: RepositoryName, _ ref: Reference, _ request: HTTPRequest, _ responder: HTTPResponder) {
        if case .contentLength(let n) = request.framing, n > HostedRepository.maxManifestBytes {
            return responder.respond(RegistryError(.sizeInvalid, .payloadTooLarge, "manifest larger than \(HostedRepository.maxManifestBytes) bytes").response)
        }
        let contentType = request.headers["Content-Type"]
        responder.readBody(into: CollectedBody(limit: HostedRepository.maxManifestBytes) { [self] body, error in
            if body.exceeded {
                return responder.respond(RegistryError(.sizeInvalid, .payloadTooLarge, "manifest larger than \(HostedRepository.maxManifestBytes) bytes").response)
            }
            if let error {
                return responder.respond(RegistryError(.manifestInvalid, .badRequest, "manifest body incomplete (\(error))").response)
            }
            let bytes = body.bytes
            pool.submit(key: poolKey) { [self] in
                responder.respond(storeManifest(name, ref, bytes, contentType: contentType, user: request.user))
            }
        })
    }

    private func storeManifest(_ name: RepositoryName, _ ref: Reference, _ bytes: [UInt8], contentType: String?, user: String?) -> HTTPResponse {
        let doc: ManifestDocument
        switch ManifestDocument.parse(bytes, contentType: contentType) {
        case .failure(let e): return e.response
        case .success(let m): doc = m
        }
        var tag: Tag?
        let digest: Digest
        switch ref {
        case .digest(let d):
            digest = Hasher.digest(bytes, d.algorithm)
            guard digest == d else {
                return RegistryError(.digestInvalid, .badRequest, "the manifest's digest is \(digest), not \(d)", detail: d.description).response
            }
        case .tag(let t):
            digest = Hasher.digest(bytes, .sha256)
            tag = t
        }
        if !store.hasRevision(ns, name, digest), Int64(bytes.count) > quotaLeft() { return quotaRefusal(Int64(bytes.count)) }
        return store.mutate { () -> HTTPResponse in
            for b in doc.blobs where !store.hasLayer(ns, name, b) {
                return RegistryError(.manifestBlobUnknown, .badRequest, "manifest references a blob unknown to the repository", detail: b.description).response
            }
            for c in doc.children where !store.hasRevision(ns, name, c) {
                return RegistryError(.manifestBlobUnknown, .badRequest, "index references a manifest unknown to the repository", detail: c.description).response
            }
            switch store.storeManifest(ns, name, bytes, digest: digest, mediaType: doc.mediaType, tag: tag,
                                       immutable: tag.map(config.isImmutable) ?? false, subject: doc.subject, pushedBy: user ?? "anonymous") {
            case .stored: break
            case .tagImmutable(let current):
                return RegistryError(.denied, .forbidden, "tag is immutable: \(tag?.value ?? "") already names \(current)", detail: tag?.value).response
            case .failed:
                return storageFailure("the manifest could not be stored")
            }
            var h = HostedRepository.apiHeaders()
            h.add("Location", "/v2/\(ns)/\(name.value)/manifests/\(digest)")
            h.add("Docker-Content-Digest", digest.description)
            if let subject = doc.subject { h.add("OCI-Subject", subject.description) }
            return HTTPResponse(status: .created, headers: h)
        }
    }

    /// Deletes a tag, or a manifest with every tag naming it; immutable
    /// tags refuse. (The registry API and the console both come here.)
    func deleteManifest(_ name: RepositoryName, _ ref: Reference) -> Result<Void, RegistryError> {
        let unknown = RegistryError(.manifestUnknown, .notFound, "manifest unknown", detail: ref.description)
        switch ref {
        case .tag(let t):
            if let d = store.resolve(ns, name, t), config.isImmutable(t) {
                return .failure(RegistryError(.denied, .forbidden, "tag is immutable: \(t) names \(d)", detail: t.value))
            }
            return store.deleteTag(ns, name, t) ? .success(()) : .failure(unknown)
        case .digest(let d):
            for t in store.tags(ns, name) where config.isImmutable(t) && store.resolve(ns, name, t) == d {
                return .failure(RegistryError(.denied, .forbidden, "tag is immutable: \(t) names this manifest", detail: t.value))
            }
            let subject = store.document(d)?.subject
            return store.deleteManifest(ns, name, d, subject: subject) ? .success(()) : .failure(unknown)
        }
    }


    private func referrers(_ name: RepositoryName, _ subject: Digest, artifactType: String?) -> HTTPResponse {
        var entries: [[String: Any]] = []
        for d in store.referrers(ns, name, subject: subject) where store.hasRevision(ns, name, d) {
            guard let doc = store.document(d), let size = store.stat(d) else { continue }
            if let artifactType, doc.artifactType != artifactType { continue }
            entries.append(doc.descriptor(d, size: Int(size)))
        }
        let index: [String: Any] = ["schemaVersion": 2, "mediaType": ManifestDocument.ociIndex, "manifests": entries]
        let body = (try? JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])) ?? Data()
        var h = HostedRepository.apiHeaders()
        h.add("Content-Type", ManifestDocument.ociIndex)
        if artifactType != nil { h.add("OCI-Filters-Applied", "artifactType") }
        return HTTPResponse(status: .ok, headers: h, body: .bytes(Array(body)), cacheStatus: .hit)
    }
}
