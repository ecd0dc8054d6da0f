import Foundation

/// What `/api/status`, the status page and `anchorage stats` show, gathered
/// from the live mirror. Plain dictionaries: it is serialised as JSON.
enum StatusReport {
    static func build(_ mirror: Mirror, openConnections: Int, sync: SyncRunner) -> [String: Any] {
        let c = mirror.counters
        let (hits, total) = c.lastHour
        let repos = c.repositories
        func top(_ key: (Counters.RepoUse) -> Int64) -> [[String: Any]] {
            repos.sorted { key($0.value) > key($1.value) }.prefix(10).map { ["name": $0.key, "bytes": $0.value.bytes, "pulls": $0.value.pulls] }
        }
        let rate = c.rateLimitRemaining.withLock { $0 }
        let failures = c.lastUpstreamFailure.withLock { $0 }
        let iso = ISO8601DateFormatter()
        func lastError(_ upstream: String) -> Any {
            failures[upstream].map { ["time": iso.string(from: $0.time), "outcome": $0.outcome] as [String: Any] } ?? NSNull()
        }
        return [
            "version": Version.string,
            "cache": [
                "path": mirror.layout.root,
                "max_bytes": mirror.index.maxSize,
                "bytes": mirror.index.totalBytes,
                "entries": mirror.index.entryCount,
                "pinned_bytes": mirror.index.pinnedBytes,
                "in_flight": mirror.blobs.inFlight.count,
                "index_loaded": mirror.index.isScanned,
            ] as [String: Any],
            "hit_ratio_last_hour": ["hits": hits, "requests": total, "ratio": total > 0 ? Double(hits) / Double(total) : NSNull()] as [String: Any],
            "top_repositories": ["by_bytes": top { $0.bytes }, "by_pulls": top { $0.pulls }],
            "upstreams": mirror.upstreams.values.sorted { $0.name < $1.name }.map { u -> [String: Any] in
                ["name": u.name, "url": u.config.url, "default": u.config.isDefault, "breaker": u.breaker.stateName,
                 "rate_limit_remaining": rate[u.name].map { $0 as Any } ?? NSNull(), "last_error": lastError(u.name)]
            },
            "chart_repositories": mirror.charts.repositories.values.sorted { $0.name < $1.name }.map { r -> [String: Any] in
                ["name": r.name, "url": r.config.url, "entries": r.entryCount ?? NSNull(), "last_error": lastError("charts/\(r.name)")]
            },
            "hosted": mirror.config.hosted.map { h -> [String: Any] in
                ["name": h.name, "bytes": mirror.hostedStore.usage(h.name), "max_bytes": h.maxSize.map { $0.bytes as Any } ?? NSNull()]
            },
            "recent_digest_mismatches": c.recentMismatches.reversed().map { m -> [String: Any] in
                ["time": iso.string(from: m.time), "source": m.source, "expected": m.expected, "actual": m.actual]
            },
            "digest_mismatches_total": c.digestMismatches.load(ordering: .relaxed),
            "sync": [
                "schedule": mirror.config.sync.schedule?.description ?? NSNull(),
                "rules": mirror.config.sync.rules.count,
                "last_run": sync.last.map { SyncRunner.json($0) } ?? NSNull(),
            ] as [String: Any],
            "open_connections": openConnections,
        ]
    }

    static func json(_ obj: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// Read-only views of what the cache holds, for browsing and `anchorage ls`.
enum CacheBrowser {
    /// (upstream, repository, tags) for every cached tag record.
    static func repositories(_ layout: CacheLayout, limit: Int = .max) -> [(upstream: String, name: String, tags: [String])] {
        var out: [(String, String, [String])] = []
        // A repository is a directory holding `_tags`; names nest.
        func walk(_ upstream: String, _ dir: String, _ name: String) {
            for entry in listDirectory(dir) where out.count < limit {
                if entry == "_tags" {
                    out.append((upstream, name, listDirectory("\(dir)/_tags").filter { !$0.contains(".tmp-") }))
                } else if !entry.hasPrefix("_") && !entry.contains(".tmp-") {
                    walk(upstream, "\(dir)/\(entry)", name.isEmpty ? entry : "\(name)/\(entry)")
                }
            }
        }
        for upstream in listDirectory(layout.tagsDir) { walk(upstream, "\(layout.tagsDir)/\(upstream)", "") }
        return out
    }

    /// A cached repository's tag names.
    static func tagNames(_ layout: CacheLayout, upstream: String, name: RepositoryName) -> [String] {
        listDirectory(layout.tagsDir(upstream: upstream, name: name)).filter { !$0.contains(".tmp-") }.sorted()
    }
}
