import Foundation
import Glibc
import XCTest

/// A temporary directory removed when the test ends, pass or fail.
final class TempDir {
    let path: String

    init(_ test: XCTestCase, _ prefix: String = "anchorage-test") {
        let template = NSTemporaryDirectory() + "\(prefix)-XXXXXX"
        var buf = Array(template.utf8CString)
        _ = mkdtemp(&buf)
        path = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let p = path
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = file(name)
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }
}

/// Result of running a command to completion.
struct RunResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program to completion with a time limit (killed when it overruns).
@discardableResult
func runCommand(_ args: [String], env: [String: String] = [:], cwd: String? = nil, timeout: Double = 120, stdin: String? = nil) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let outFile = NSTemporaryDirectory() + "anch-out-\(UUID().uuidString)"
    let errFile = NSTemporaryDirectory() + "anch-err-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: outFile, contents: nil)
    FileManager.default.createFile(atPath: errFile, contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: outFile)
        try? FileManager.default.removeItem(atPath: errFile)
    }
    p.standardOutput = FileHandle(forWritingAtPath: outFile)
    p.standardError = FileHandle(forWritingAtPath: errFile)
    if let stdin {
        let pipe = Pipe()
        p.standardInput = pipe
        try p.run()
        pipe.fileHandleForWriting.write(Data(stdin.utf8))
        try? pipe.fileHandleForWriting.close()
    } else {
        p.standardInput = FileHandle.nullDevice
        try p.run()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw NSError(domain: "run", code: 1, userInfo: [NSLocalizedDescriptionKey: "timed out after \(timeout)s: \(args.joined(separator: " "))"])
    }
    p.waitUntilExit()
    let out = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
    return RunResult(status: p.terminationStatus, stdout: out, stderr: err)
}

/// A background server process whose stderr goes to a log file; killed at
/// teardown if the test did not stop it.
final class BackgroundProcess {
    let process = Process()
    let logPath: String

    init(_ test: XCTestCase, _ args: [String], logPath: String, cwd: String? = nil, env: [String: String] = [:]) throws {
        self.logPath = logPath
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        process.environment = e
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let fh = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = fh
        process.standardError = fh
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let p = process
        test.addTeardownBlock {
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text` (or the process died / time ran out).
    func waitForLog(_ text: String, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            if !process.isRunning { return log.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// SIGTERM, then wait; SIGKILL after `timeout`. Returns the exit status.
    @discardableResult
    func stop(timeout: Double = 15) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A program the tests run: the path in environment variable `env` (set by
/// scripts/test), else `relativePath` in the checkout. A missing one fails
/// the test (never a skip).
func checkoutProgram(env: String, _ relativePath: String, name: String) throws -> String {
    if let p = ProcessInfo.processInfo.environment[env], FileManager.default.isExecutableFile(atPath: p) {
        return p
    }
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    let p = url.appendingPathComponent(relativePath).path
    guard FileManager.default.isExecutableFile(atPath: p) else {
        throw NSError(domain: "anchorage", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(name) not found at \(p) ($\(env) unset); run scripts/test"])
    }
    return p
}

/// The `anchorage` binary under test: $ANCHORAGE_BIN, else the debug build.
func anchorageBinary() throws -> String {
    try checkoutProgram(env: "ANCHORAGE_BIN", ".build/debug/anchorage", name: "the anchorage binary")
}

/// A running `anchorage serve` on a free loopback port.
final class AnchorageServer {
    let dir: TempDir
    let proc: BackgroundProcess
    let port: UInt16
    var base: String { "http://127.0.0.1:\(port)" }
    var log: String { proc.log }

    /// `extraConfig` is appended after a [server] section listening on 127.0.0.1:0.
    init(_ test: XCTestCase, listen: String = "127.0.0.1:0", serverKeys: String = "", cacheKeys: String = "", config extraConfig: String = "", dir: TempDir? = nil) throws {
        let d = dir ?? TempDir(test)
        self.dir = d
        let conf = d.write("mirror.conf", "[server]\nlisten = \(listen)\nworkers = 2\n\(serverKeys)\n[cache]\npath = \(d.path)/cache\n\(cacheKeys)\n\(extraConfig)\n")
        proc = try BackgroundProcess(test, [try anchorageBinary(), "serve", "--config", conf], logPath: d.file("anchorage.log"), cwd: d.path)
        guard proc.waitForLog("msg=listening addr=127.0.0.1:", timeout: 30),
              let range = proc.log.range(of: #"addr=127\.0\.0\.1:(\d+)"#, options: .regularExpression) else {
            throw NSError(domain: "anchorage", code: 1, userInfo: [NSLocalizedDescriptionKey: "anchorage did not start:\n\(proc.log)"])
        }
        port = UInt16(proc.log[range].split(separator: ":").last!)!
    }

    @discardableResult
    func stop() -> Int32 { proc.stop() }

    /// Access-log lines for a path substring.
    func accessLines(_ pathContains: String) -> [String] {
        log.split(separator: "\n").filter { $0.contains("msg=access") && $0.contains(pathContains) }.map(String.init)
    }
}

/// Fetches with the real curl; returns (status, headers, body).
func curl(_ args: [String], timeout: Double = 60) throws -> RunResult {
    try runCommand(["curl", "-sS"] + args, timeout: timeout)
}
