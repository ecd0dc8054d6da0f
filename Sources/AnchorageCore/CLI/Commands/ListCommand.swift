import Foundation

extension AnchorageCLI {
    /// `anchorage ls`: what is cached.
    static let list = Command(name: "ls", summary: "list what is cached: images (upstream/name:tag → digest, and 'pinned' when eviction may not remove it) or charts",
            usage: "anchorage ls [images|charts] [--config PATH]", flags: [configFlag], positional: ["images", "charts"]) { flags in
        guard case .success(let c) = loadConfig(flags["--config"]) else { return configFailure(flags["--config"]) }
        let layout = CacheLayout(root: c.cache.path)
        let what = flags["_"] ?? "images"
        if what == "images" {
            let tags = TagIndex(layout: layout)
            let pins = PinSet.load(layout)
            for r in CacheBrowser.repositories(layout) {
                guard let name = RepositoryName(r.name) else { continue }
                for t in r.tags {
                    guard let tag = Tag(t), let rec = tags.get(upstream: r.upstream, name: name, tag: tag) else { continue }
                    print("\(r.upstream)/\(r.name):\(t)\t\(rec.digest)\(pins.contains(rec.digest) ? "\tpinned" : "")")
                }
            }
        } else {
            for ch in c.charts {
                guard let data = FileManager.default.contents(atPath: layout.chartIndex(repository: ch.name)),
                      let idx = try? ChartIndex.parse(String(decoding: data, as: UTF8.self)) else { continue }
                for e in idx.entries {
                    let cached = e.digest.map { access(layout.blob($0), F_OK) == 0 } ?? false
                    print("\(ch.name)/\(e.name)\t\(e.version)\t\(cached ? "cached" : "-")")
                }
            }
        }
        return 0
    }
}
