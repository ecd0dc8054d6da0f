import Foundation

/// What a signed-in user may change from the console: delete hosted tags,
/// manifests and chart versions (the namespace's writers or an admin);
/// evict, pin and unpin cached images, run sync and garbage collection
/// (admins). Each returns the JSON the API answers with.
struct ConsoleActions {
    let mirror: Mirror
    let catalog: RepositoryCatalog
    let sync: SyncRunner

    private func requireAdmin(_ user: String) -> ConsoleError? {
        mirror.config.auth.isAdmin(user) ? nil : .forbidden("\(user) is not an admin ([auth] admins)")
    }

    func deleteHosted(_ key: RepositoryKey, _ ref: Reference, user: String) -> Result<[String: Any], ConsoleError> {
        guard let repo = mirror.hosted.first(where: { $0.name == key.source }) else { return .failure(.notFound("no hosted namespace \(key.source)")) }
        guard repo.config.mayWrite(user) || mirror.config.auth.isAdmin(user) else {
            return .failure(.forbidden("\(user) may not write to \(key.source)"))
        }
        switch repo.deleteManifest(key.name, ref) {
        case .failure(let e): return .failure(ConsoleError(e))
        case .success:
            Log.info("deleted from the console", ["repository": key.path, "reference": ref.description, "user": user])
            return .success(["deleted": ref.description])
        }
    }

    /// Forgets a cached tag (or every tag naming a digest) and removes the
    /// content no other cached or hosted repository names and no pin holds.
    func evict(_ key: RepositoryKey, _ ref: Reference, user: String) -> Result<[String: Any], ConsoleError> {
        if let e = requireAdmin(user) { return .failure(e) }
        guard let entry = catalog.entry(key) else { return .failure(.notFound("no cached repository \(key.path)")) }
        let tags: [(tag: String, digest: Digest)]
        switch ref {
        case .tag(let t): tags = entry.tags.filter { $0.tag == t.value }
        case .digest(let d): tags = entry.tags.filter { $0.digest == d }
        }
        guard !tags.isEmpty else { return .failure(.notFound("\(ref) is not cached in \(key.path)")) }
        let src = catalog.source(.cached)
        var candidates = RepositoryCatalog.Footprint()
        for t in tags {
            if let tag = Tag(t.tag) { _ = mirror.tagIndex.forget(upstream: key.source, name: key.name, tag: tag) }
            candidates.merge(catalog.footprint(t.digest, src)) { a, _ in a }
        }
        let stillNamed = catalog.entries().owners
        let pins = PinSet.load(mirror.layout)
        var removed = 0
        var bytes: Int64 = 0
        for (d, size) in candidates where stillNamed[d] == nil && !pins.contains(d) && mirror.store.contains(d) {
            mirror.store.delete(d)
            removed += 1
            bytes += size
        }
        Log.info("evicted from the console", ["repository": key.path, "reference": ref.description, "user": user, "blobs": "\(removed)"])
        return .success(["tags": tags.map(\.tag), "blobs_removed": removed, "bytes_removed": bytes])
    }

    /// Pins what a cached image names (manifest, children, blobs), or unpins it.
    func pin(_ key: RepositoryKey, _ ref: Reference, on: Bool, user: String) -> Result<[String: Any], ConsoleError> {
        if let e = requireAdmin(user) { return .failure(e) }
        guard let entry = catalog.entry(key) else { return .failure(.notFound("no cached repository \(key.path)")) }
        guard let digest = entry.resolve(ref), entry.manifests.contains(digest) else { return .failure(.notFound("\(ref) is not cached in \(key.path)")) }
        let image = "\(key.path)@\(digest)"
        let pinKey = PinSet.key(forImage: image)
        if on {
            let footprint = catalog.footprint(digest, catalog.source(.cached))
            PinSet.write(mirror.layout, key: pinKey, rule: "pinned from the console by \(user): \(image)", digests: Set(footprint.keys))
            mirror.sharedPins?.publish(pinKey)
            mirror.index.refreshPins()
            Log.info("pinned from the console", ["image": image, "user": user])
            return .success(["pinned": true, "digest": digest.description, "blobs": footprint.count])
        }
        guard PinSet.remove(mirror.layout, key: pinKey) else { return .failure(.notFound("\(image) was not pinned from the console")) }
        mirror.sharedPins?.withdraw(pinKey)
        mirror.index.refreshPins()
        let bySync = PinSet.load(mirror.layout).contains(digest)
        Log.info("unpinned from the console", ["image": image, "user": user])
        return .success(["pinned": bySync, "pinned_by_sync": bySync, "digest": digest.description])
    }

    func deleteChart(repository: String, chart: String, version: String, user: String) -> Result<[String: Any], ConsoleError> {
        guard let repo = mirror.charts.hosted[repository]?.repository else { return .failure(.notFound("no hosted chart repository \(repository)")) }
        if let down = repo.refresh() { return .failure(.unavailable("the object store holding \(repository) is unavailable: \(down)")) }
        guard repo.config.mayWrite(user) || mirror.config.auth.isAdmin(user) else {
            return .failure(.forbidden("\(user) may not write to \(repository)"))
        }
        guard repo.delete(chart, version) else { return .failure(.notFound("no version \(version) of \(chart) in \(repository)")) }
        Log.info("chart deleted from the console", ["repository": repository, "chart": chart, "version": version, "user": user])
        return .success(["deleted": "\(chart)-\(version)"])
    }

    func startSync(user: String) -> Result<[String: Any], ConsoleError> {
        if let e = requireAdmin(user) { return .failure(e) }
        guard !mirror.config.sync.rules.isEmpty else { return .failure(.conflict("no [sync] rules are configured")) }
        guard sync.start(trigger: "console (\(user))") else { return .failure(.conflict("a sync is already running")) }
        return .success(["started": true])
    }

    func collectGarbage(dryRun: Bool, user: String) -> Result<[String: Any], ConsoleError> {
        if let e = requireAdmin(user) { return .failure(e) }
        let report = HostedCollector(store: mirror.hostedStore, namespaces: mirror.config.hosted).run(dryRun: dryRun)
        Log.info("garbage collection from the console", ["user": user, "summary": report.summary(dryRun: dryRun)])
        return .success(["dry_run": dryRun, "tags": report.tags, "manifests": report.manifests, "blobs": report.blobs,
                         "bytes": report.bytes, "summary": report.summary(dryRun: dryRun)])
    }
}
