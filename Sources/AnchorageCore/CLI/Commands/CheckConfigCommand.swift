extension AnchorageCLI {
    /// `anchorage check-config`: validates mirror.conf and prints the effective configuration with its warnings.
    static let checkConfig = Command(name: "check-config", summary: "validate the configuration and print the effective settings",
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
    }
}
