extension AnchorageCLI {
    /// `anchorage sync`: fetches and pins what [sync] names.
    static let sync = Command(name: "sync", summary: "fetch and pin what [sync] names (for cron or a systemd timer)",
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
    }
}
