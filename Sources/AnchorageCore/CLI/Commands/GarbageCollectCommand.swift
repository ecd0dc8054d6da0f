extension AnchorageCLI {
    /// `anchorage gc`: evicts down to a size now.
    static let garbageCollect = Command(name: "gc", summary: "evict least recently used (unpinned) blobs down to SIZE now",
            usage: "anchorage gc --to SIZE [--config PATH]",
            flags: [configFlag, Flag(name: "--to", takesValue: true, help: "target size, e.g. 10GiB")]) { flags in
        guard case .success(let c) = loadConfig(flags["--config"]) else { return configFailure(flags["--config"]) }
        guard let target = flags["--to"].flatMap(ByteSize.init(parsing:)) else {
            printErr("anchorage: gc needs --to SIZE (e.g. 10GiB)\n\nusage: anchorage gc --to SIZE [--config PATH]")
            return 2
        }
        Log.minimumLevel = .warn
        let layout = CacheLayout(root: c.cache.path)
        let index = CacheIndex(layout: layout, maxSize: c.cache.maxSize.bytes)
        index.scanNow(quiet: true)
        let before = index.totalBytes
        let freed = index.evict(downTo: target.bytes)
        print("evicted \(ByteSize(freed)); cache now \(ByteSize(index.totalBytes)) (was \(ByteSize(before)); pinned \(ByteSize(index.pinnedBytes)))")
        return 0
    }
}
