extension AnchorageCLI {
    /// `anchorage gc`: evicts the cache down to a size now, or collects
    /// unreferenced hosted content (with retention) while the daemon serves.
    static let garbageCollect = Command(name: "gc", summary: "evict cached blobs down to SIZE, or collect unreferenced hosted content",
            usage: "anchorage gc --to SIZE [--config PATH]\n       anchorage gc --hosted [--dry-run] [--config PATH]",
            flags: [configFlag, Flag(name: "--to", takesValue: true, help: "target size of the cache, e.g. 10GiB"),
                    Flag(name: "--hosted", takesValue: false, help: "apply retention and remove hosted blobs no manifest references"),
                    Flag(name: "--dry-run", takesValue: false, help: "with --hosted: list what would go and how many bytes; change nothing")]) { flags in
        guard case .success(let c) = loadConfig(flags["--config"]) else { return configFailure(flags["--config"]) }
        Log.minimumLevel = .warn
        if flags["--hosted"] != nil {
            let dryRun = flags["--dry-run"] != nil
            let report = HostedCollector(store: hostedStore(c), namespaces: c.hosted).run(dryRun: dryRun)
            for t in report.tags { print("\(dryRun ? "would delete" : "deleted") tag \(t)") }
            for m in report.manifests { print("\(dryRun ? "would delete" : "deleted") manifest \(m)") }
            print(report.summary(dryRun: dryRun))
            return report.skipped == nil ? 0 : 1
        }
        guard let target = flags["--to"].flatMap(ByteSize.init(parsing:)) else {
            printErr("anchorage: gc needs --to SIZE (e.g. 10GiB) or --hosted\n\nusage: anchorage gc --to SIZE [--config PATH]\n       anchorage gc --hosted [--dry-run] [--config PATH]")
            return 2
        }
        let layout = CacheLayout(root: c.cache.path)
        let index = CacheIndex(layout: layout, maxSize: c.cache.maxSize.bytes)
        index.scanNow(quiet: true)
        let before = index.totalBytes
        let freed = index.evict(downTo: target.bytes)
        print("evicted \(ByteSize(freed)); cache now \(ByteSize(index.totalBytes)) (was \(ByteSize(before)); pinned \(ByteSize(index.pinnedBytes)))")
        return 0
    }

    /// The hosted store the configuration describes: with `[storage]
    /// backend = s3` its records and content are the bucket's.
    static func hostedStore(_ c: Config) -> HostedStore {
        let layout = CacheLayout(root: c.cache.path)
        let tier = c.storage.s3.flatMap(S3Client.init).map {
            ObjectStoreTier(s3: $0, local: FileBlobStore(layout: layout, index: CacheIndex(layout: layout, maxSize: c.cache.maxSize.bytes)), counters: Counters())
        }
        return HostedStore(cacheRoot: c.cache.path, spaceFrom: nil, shared: tier)
    }
}
