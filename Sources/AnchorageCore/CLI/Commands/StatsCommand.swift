extension AnchorageCLI {
    /// `anchorage stats`: the cache summary.
    static let stats = Command(name: "stats", summary: "print the cache summary (size, entries, pinned, repositories)",
            usage: "anchorage stats [--config PATH] [--json]",
            flags: [configFlag, Flag(name: "--json", takesValue: false, help: "machine-readable output")]) { flags in
        guard case .success(let c) = loadConfig(flags["--config"]) else { return configFailure(flags["--config"]) }
        let layout = CacheLayout(root: c.cache.path)
        let index = CacheIndex(layout: layout, maxSize: c.cache.maxSize.bytes)
        index.scanNow(quiet: true)
        let repos = CacheBrowser.repositories(layout)
        let stats: [String: Any] = [
            "path": layout.root, "max_bytes": index.maxSize, "bytes": index.totalBytes, "entries": index.entryCount,
            "pinned_bytes": index.pinnedBytes, "repositories": repos.count, "tags": repos.reduce(0) { $0 + $1.tags.count },
        ]
        if flags["--json"] != nil {
            print(StatusReport.json(stats), terminator: "")
        } else {
            let pct = index.maxSize > 0 ? Double(index.totalBytes) * 100 / Double(index.maxSize) : 0
            print("cache:        \(layout.root)")
            print("used:         \(ByteSize(index.totalBytes)) of \(ByteSize(index.maxSize)) (\(String(format: "%.1f", pct))%)")
            print("blobs:        \(index.entryCount)")
            print("pinned:       \(ByteSize(index.pinnedBytes))")
            print("repositories: \(repos.count) (\(stats["tags"]!) tags)")
        }
        return 0
    }
}
