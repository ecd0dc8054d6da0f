import Foundation

/// A usage error: one line plus usage on stderr, exit 2.
struct UsageError: Error {
    let message: String
    let usage: String
}

/// The `anchorage` command line. Each command parses its own flags from a
/// small table so `--help` and the errors come from one place.
public enum AnchorageCLI {
    struct Command: Sendable {
        let name: String
        let summary: String
        let usage: String
        let flags: [Flag]
        /// Allowed values of one optional positional argument (stored under "_").
        var positional: [String] = []
        let run: @Sendable ([String: String]) -> Int32

        init(name: String, summary: String, usage: String, flags: [Flag], positional: [String] = [], run: @escaping @Sendable ([String: String]) -> Int32) {
            self.name = name
            self.summary = summary
            self.usage = usage
            self.flags = flags
            self.positional = positional
            self.run = run
        }
    }

    struct Flag: Sendable {
        let name: String
        let takesValue: Bool
        let help: String
    }

    static let configFlag = Flag(name: "--config", takesValue: true, help: "configuration file (default: ./mirror.conf if present, else built-in defaults)")

    static var commands: [Command] {
        [serve, checkConfig, verify, sync, stats, list, garbageCollect]
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
