extension AnchorageCLI {
    /// `anchorage verify`: re-hashes every cached blob.
    static let verify = Command(name: "verify", summary: "re-hash every cached blob; report (and with --repair remove) bad ones",
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
    }
}
