extension AnchorageCLI {
    /// `anchorage verify`: re-hashes every cached and hosted blob, and checks
    /// that every hosted manifest's references are there.
    static let verify = Command(name: "verify", summary: "re-hash every cached and hosted blob; report (and with --repair remove) bad ones",
            usage: "anchorage verify [--config PATH] [--repair]",
            flags: [configFlag, Flag(name: "--repair", takesValue: false, help: "delete blobs whose content does not match their digest")]) { flags in
        switch loadConfig(flags["--config"]) {
        case .success(let c):
            let report = Verifier(layout: CacheLayout(root: c.cache.path)).run(repair: flags["--repair"] != nil) { print($0) }
            print("checked \(report.checked) blobs (\(ByteSize(report.bytes))), \(report.bad.count) bad, \(report.removed) removed")
            let hosted = hostedStore(c)
            let own = Verifier(layout: hosted.layout.content).run(repair: flags["--repair"] != nil) { print("hosted: \($0)") }
            let missing = hosted.missingReferences()
            for m in missing { print("MISSING \(m)") }
            print("hosted: checked \(own.checked) blobs (\(ByteSize(own.bytes))), \(own.bad.count) bad, \(own.removed) removed, \(missing.count) missing references")
            return report.bad.count > report.removed || own.bad.count > own.removed || !missing.isEmpty ? 1 : 0
        case .failure(let e):
            printErr("anchorage: \(e)")
            return 1
        }
    }
}
