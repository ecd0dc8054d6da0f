import Foundation

/// What `/api/status`, the status page and `anchorage stats` show, gathered
/// from the live mirror. Plain dictionaries: it is serialised as JSON.
enum StatusReport {
    static func build(_ mirror: Mirror, openConnections: Int, lastSync: SyncScheduler.LastRun?) -> [String: Any] {
        let c = mirror.counters
        let (hits, total) = c.lastHour
        let repos = c.repositories
        func top(_ key: (Counters.RepoUse) -> Int64) -> [[String: Any]] {
            repos.sorted { key($0.value) > key($1.value) }.prefix(10).map { ["name": $0.key, "bytes": $0.value.bytes, "pulls": $0.value.pulls] }
        }
        let rate = c.rateLimitRemaining.withLock { $0 }
        let iso = ISO8601DateFormatter()
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
                ["name": u.name, "url": u.config.url, "default": u.config.isDefault,
                 "breaker": u.breaker.isOpen ? "open" : "closed", "rate_limit_remaining": rate[u.name].map { $0 as Any } ?? NSNull()]
            },
            "chart_repositories": mirror.charts.repositories.values.sorted { $0.name < $1.name }.map { r -> [String: Any] in
                ["name": r.name, "url": r.config.url, "entries": r.entryCount ?? NSNull()]
            },
            "recent_digest_mismatches": c.recentMismatches.reversed().map { m -> [String: Any] in
                ["time": iso.string(from: m.time), "source": m.source, "expected": m.expected, "actual": m.actual]
            },
            "digest_mismatches_total": c.digestMismatches.load(ordering: .relaxed),
            "sync": [
                "schedule": mirror.config.sync.schedule?.description ?? NSNull(),
                "rules": mirror.config.sync.rules.count,
                "last_run": lastSync.map { ["finished": iso.string(from: $0.finished), "ok": $0.ok, "summary": $0.summary] as [String: Any] } ?? NSNull(),
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
    static func repositories(_ layout: CacheLayout, limit: Int = 10_000) -> [(upstream: String, name: String, tags: [String])] {
        var out: [(String, String, [String])] = []
        let fm = FileManager.default
        let root = layout.tagsDir
        for upstream in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            guard let walker = fm.enumerator(atPath: "\(root)/\(upstream)") else { continue }
            while let rel = walker.nextObject() as? String, out.count < limit {
                guard rel.hasSuffix("/_tags") || rel == "_tags" else { continue }
                let name = rel.hasSuffix("/_tags") ? String(rel.dropLast(6)) : ""
                let tags = ((try? fm.contentsOfDirectory(atPath: "\(root)/\(upstream)/\(rel)")) ?? []).filter { !$0.contains(".tmp-") }.sorted()
                out.append((upstream, name, tags))
                walker.skipDescendants()
            }
        }
        return out
    }

    static func tags(_ mirror: Mirror, upstream: String, name: RepositoryName) -> [[String: Any]] {
        let repo = repositories(mirror.layout).first { $0.upstream == upstream && $0.name == name.value }
        return (repo?.tags ?? []).compactMap { t -> [String: Any]? in
            guard let tag = Tag(t), let rec = mirror.tagIndex.get(upstream: upstream, name: name, tag: tag) else { return nil }
            return ["tag": t, "digest": rec.digest.description, "media_type": rec.mediaType,
                    "checked_at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(rec.checkedAt) / 1000)),
                    "cached": mirror.store.contains(rec.digest)]
        }
    }

    /// A manifest's platforms (for indexes) or layers with sizes, and what is cached.
    static func manifest(_ mirror: Mirror, digest: Digest) -> [String: Any]? {
        guard let body = mirror.store.readAll(digest, limit: ManifestService.maxManifestBytes),
              let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        var out: [String: Any] = ["digest": digest.description, "media_type": mirror.store.mediaType(digest) ?? (obj["mediaType"] as? String ?? "")]
        if let children = obj["manifests"] as? [[String: Any]] {
            out["platforms"] = children.map { ch -> [String: Any] in
                let p = ch["platform"] as? [String: Any] ?? [:]
                let plat = [p["os"] as? String, p["architecture"] as? String, p["variant"] as? String].compactMap { $0 }.joined(separator: "/")
                let d = ch["digest"] as? String ?? ""
                return ["platform": plat, "digest": d, "size": ch["size"] ?? 0, "cached": Digest(d).map(mirror.store.contains) ?? false]
            }
        }
        if let layers = obj["layers"] as? [[String: Any]] {
            out["layers"] = layers.map { l -> [String: Any] in
                let d = l["digest"] as? String ?? ""
                return ["digest": d, "size": l["size"] ?? 0, "media_type": l["mediaType"] ?? "", "cached": Digest(d).map(mirror.store.contains) ?? false]
            }
            out["total_size"] = layers.reduce(0) { $0 + ($1["size"] as? Int ?? 0) }
        }
        return out
    }

    static func charts(_ mirror: Mirror) -> [[String: Any]] {
        mirror.charts.repositories.values.sorted { $0.name < $1.name }.map { r -> [String: Any] in
            let versions = r.cachedSnapshot?.versions ?? [:]
            return ["repository": r.name, "charts": versions.sorted { $0.key < $1.key }.map { ["name": $0.key, "versions": $0.value.sorted { SemanticVersion.precedes($1, $0) }] }]
        }
    }
}
