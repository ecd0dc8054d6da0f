import Foundation

/// A usage error: one line plus usage on stderr, exit 2.
struct UsageError: Error {
    let message: String
    let usage: String
}

/// The `anchorage` command line. Each command parses its own flags from a
/// small table so `--help` and the errors come from one place.
public enum AnchorageCLI {
    struct Command {
        let name: String
        let summary: String
        let usage: String
        let flags: [Flag]
        /// Allowed values of one optional positional argument (stored under "_").
        var positional: [String] = []
        let run: ([String: String]) -> Int32

        init(name: String, summary: String, usage: String, flags: [Flag], positional: [String] = [], run: @escaping ([String: String]) -> Int32) {
            self.name = name
            self.summary = summary
            self.usage = usage
            self.flags = flags
            self.positional = positional
            self.run = run
        }
    }

    struct Flag {
        let name: String
        let takesValue: Bool
        let help: String
    }

    static let configFlag = Flag(name: "--config", takesValue: true, help: "configuration file (default: ./mirror.conf if present, else built-in defaults)")

    static var commands: [Command] {
        [
            Command(name: "serve", summary: "run the mirror daemon", usage: "anchorage serve [--config PATH]",
                    flags: [configFlag]) { flags in
                switch loadConfig(flags["--config"]) {
                case .success(let c): return Daemon.run(config: c)
                case .failure(let e):
                    printErr("anchorage: \(e)")
                    return 1
                }
            },
            Command(name: "check-config", summary: "validate the configuration and print the effective settings",
                    usage: "anchorage check-config [--config PATH]", flags: [configFlag]) { flags in
                switch loadConfig(flags["--config"]) {
                case .success(let c):
                    print(c.render(), terminator: "")
                    for w in c.warnings { printErr("anchorage: WARNING: \(w)") }
                    for exposed in c.exposedCredentials {
                        printErr("anchorage: WARNING: \(exposed) has upstream credentials but [auth] requires none: anyone who can reach the mirror pulls with them")
                    }
                    return 0
                case .failure(let e):
                    printErr("anchorage: \(e)")
                    return 1
                }
            },
            Command(name: "verify", summary: "re-hash every cached blob; report (and with --repair remove) bad ones",
                    usage: "anchorage verify [--config PATH] [--repair]",
                    flags: [configFlag, Flag(name: "--repair", takesValue: false, help: "delete blobs whose content does not match their digest")]) { flags in
                switch loadConfig(flags["--config"]) {
                case .success(let c):
                    let report = Verifier(layout: CacheLayout(root: c.cache.path)).run(repair: flags["--repair"] != nil) { print($0) }
                    print("checked \(report.checked) blobs (\(ByteSize(report.bytes))), \(report.bad.count) bad, \(report.removed) removed")
                    return report.bad.count > report.removed ? 1 : 0
                case .failure(let e):
                    printErr("anchorage: \(e)")
                    return 1
                }
            },
            Command(name: "sync", summary: "fetch and pin what [sync] names (for cron or a systemd timer)",
                    usage: "anchorage sync [--config PATH] [--dry-run] [--only PATTERN] [--json]",
                    flags: [configFlag,
                            Flag(name: "--dry-run", takesValue: false, help: "list what would be fetched and how many bytes; change nothing"),
                            Flag(name: "--only", takesValue: true, help: "only rules whose text contains PATTERN"),
                            Flag(name: "--json", takesValue: false, help: "print a machine-readable summary on stdout")]) { flags in
                let config: Config
                switch loadConfig(flags["--config"]) {
                case .success(let c): config = c
                case .failure(let e):
                    printErr("anchorage: \(e)")
                    return 2
                }
                Log.minimumLevel = config.log.level
                if config.sync.rules.isEmpty {
                    printErr("anchorage: no [sync] rules in \(config.source)")
                    return 2
                }
                var options = SyncEngine.Options()
                options.dryRun = flags["--dry-run"] != nil
                options.only = flags["--only"]
                let mirror = Mirror(config: config)
                let report = SyncEngine(mirror: mirror, options: options, progress: .forStderr()).run()
                if flags["--json"] != nil {
                    print(report.json)
                } else if options.dryRun {
                    print("total to fetch: \(ByteSize(report.bytesToFetch)) (\(report.bytesToFetch) bytes)")
                } else {
                    print("sync: \(report.fatal ?? report.summaryLine)")
                    for i in report.items where !i.ok { print("FAILED \(i.label): \(i.error ?? "")") }
                    for r in report.failedRules { print("FAILED rule '\(r.rule)': \(r.error)") }
                }
                return report.ok ? 0 : 1
            },
            Command(name: "stats", summary: "print the cache summary (size, entries, pinned, repositories)",
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
            },
            Command(name: "ls", summary: "list what is cached: images (upstream/name:tag → digest) or charts",
                    usage: "anchorage ls [images|charts] [--config PATH]", flags: [configFlag], positional: ["images", "charts"]) { flags in
                guard case .success(let c) = loadConfig(flags["--config"]) else { return configFailure(flags["--config"]) }
                let layout = CacheLayout(root: c.cache.path)
                let what = flags["_"] ?? "images"
                if what == "images" {
                    let tags = TagIndex(layout: layout)
                    for r in CacheBrowser.repositories(layout) {
                        guard let name = RepositoryName(r.name) else { continue }
                        for t in r.tags {
                            guard let tag = Tag(t), let rec = tags.get(upstream: r.upstream, name: name, tag: tag) else { continue }
                            print("\(r.upstream)/\(r.name):\(t)\t\(rec.digest)")
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
            },
            Command(name: "gc", summary: "evict least recently used (unpinned) blobs down to SIZE now",
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
            },
        ]
    }

    static func configFailure(_ path: String?) -> Int32 {
        if case .failure(let e) = loadConfig(path) { printErr("anchorage: \(e)") }
        return 1
    }

    static func loadConfig(_ path: String?) -> Result<Config, ConfigError> {
        do {
            return .success(try Config.loadDefault(explicitPath: path))
        } catch {
            return .failure(error)
        }
    }

    static var mainUsage: String {
        var s = "usage: anchorage <command> [flags]\n\ncommands:\n"
        for c in commands { s += "  \(c.name.padding(toLength: 14, withPad: " ", startingAt: 0))\(c.summary)\n" }
        s += "\nflags:\n  --help        show help (also: anchorage <command> --help)\n  --version     print the version\n"
        return s
    }

    static func usage(of c: Command) -> String {
        var s = "usage: \(c.usage)\n\n\(c.summary)\n"
        if !c.flags.isEmpty {
            s += "\nflags:\n"
            for f in c.flags {
                let left = f.takesValue ? "\(f.name) VALUE" : f.name
                s += "  \(left.padding(toLength: 18, withPad: " ", startingAt: 0))\(f.help)\n"
            }
        }
        s += "  --help            show this help\n"
        return s
    }

    /// Runs the command line; returns the process exit code.
    public static func main(_ args: [String]) -> Int32 {
        guard let first = args.first else {
            printErr(mainUsage)
            return 2
        }
        switch first {
        case "--help", "-h", "help":
            print(mainUsage, terminator: "")
            return 0
        case "--version", "-V", "version":
            print("anchorage \(Version.string)")
            return 0
        default:
            break
        }
        guard let cmd = commands.first(where: { $0.name == first }) else {
            let what = first.hasPrefix("-") ? "unknown flag '\(first)'" : "unknown command '\(first)'"
            printErr("anchorage: \(what)\n\n\(mainUsage)")
            return 2
        }
        do {
            guard let flags = try parseFlags(Array(args.dropFirst()), for: cmd) else {
                print(usage(of: cmd), terminator: "")
                return 0
            }
            return cmd.run(flags)
        } catch {
            printErr("anchorage: \(error.message)\n\n\(error.usage)")
            return 2
        }
    }

    /// nil means `--help` was asked for.
    static func parseFlags(_ args: [String], for cmd: Command) throws(UsageError) -> [String: String]? {
        var out: [String: String] = [:]
        var i = 0
        while i < args.count {
            var a = args[i]
            if a == "--help" || a == "-h" { return nil }
            var inlineValue: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                inlineValue = String(a[a.index(after: eq)...])
                a = String(a[..<eq])
            }
            if !a.hasPrefix("-"), cmd.positional.contains(a), out["_"] == nil {
                out["_"] = a
                i += 1
                continue
            }
            guard let flag = cmd.flags.first(where: { $0.name == a }) else {
                let what = a.hasPrefix("-") ? "unknown flag '\(a)' for '\(cmd.name)'" : "unexpected argument '\(a)' for '\(cmd.name)'"
                throw UsageError(message: what, usage: usage(of: cmd))
            }
            if flag.takesValue {
                if let v = inlineValue {
                    out[a] = v
                } else {
                    guard i + 1 < args.count else { throw UsageError(message: "flag '\(a)' needs a value", usage: usage(of: cmd)) }
                    out[a] = args[i + 1]
                    i += 1
                }
            } else {
                out[a] = "true"
            }
            i += 1
        }
        return out
    }

    static func printErr(_ s: String) {
        FileHandle.standardError.write((s.hasSuffix("\n") ? s : s + "\n").data(using: .utf8) ?? Data())
    }
}
