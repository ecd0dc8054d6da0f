extension AnchorageCLI {
    /// `anchorage serve`: runs the daemon until SIGTERM/SIGINT.
    static let serve = Command(name: "serve", summary: "run the mirror daemon", usage: "anchorage serve [--config PATH]",
            flags: [configFlag]) { flags in
        switch loadConfig(flags["--config"]) {
        case .success(let c): return Daemon.run(config: c)
        case .failure(let e):
            printErr("anchorage: \(e)")
            return 1
        }
    }
}
