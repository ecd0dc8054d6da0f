import Foundation
import XCTest

/// A real dockerd with its state in a temp dir, listening on a unix socket;
/// stopped at teardown. 127.0.0.0/8 registries are plain HTTP to it.
final class Dockerd {
    let dir: TempDir
    let sock: String
    let proc: BackgroundProcess

    init(_ test: XCTestCase, mirrors: [String] = []) throws {
        dir = TempDir(test, "dockerd")
        sock = dir.file("docker.sock")
        let mirrorList = mirrors.map { "\"\($0)\"" }.joined(separator: ", ")
        let insecure = mirrors.map { "\"\($0.replacingOccurrences(of: "http://", with: ""))\"" }.joined(separator: ", ")
        let conf = dir.write("daemon.json", """
        {
          "data-root": "\(dir.path)/data", "exec-root": "\(dir.path)/exec", "pidfile": "\(dir.path)/docker.pid",
          "hosts": ["unix://\(sock)"], "storage-driver": "vfs",
          "iptables": false, "ip6tables": false, "ip-masq": false, "bridge": "none",
          "registry-mirrors": [\(mirrorList)], "insecure-registries": [\(insecure)]
        }
        """)
        proc = try BackgroundProcess(test, ["dockerd", "--config-file", conf], logPath: dir.file("dockerd.log"))
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if (try? docker(["version"], timeout: 10))?.status == 0 { return }
            usleep(300_000)
        }
        throw NSError(domain: "dockerd", code: 1, userInfo: [NSLocalizedDescriptionKey: "dockerd did not start: \(proc.log.suffix(3000))"])
    }

    /// The docker CLI against this daemon, with its own config dir (logins).
    func docker(_ args: [String], timeout: Double = 180) throws -> RunResult {
        try runCommand(["/usr/bin/docker", "--config", dir.file("cli"), "-H", "unix://\(sock)"] + args, timeout: timeout)
    }

    func stop() { proc.stop(timeout: 30) }
}

/// A real containerd with its state in a temp dir and the CRI plugin off.
final class Containerd {
    let dir: TempDir
    let sock: String
    let proc: BackgroundProcess
    var hostsDir: String { dir.file("certs.d") }

    init(_ test: XCTestCase) throws {
        dir = TempDir(test, "ctrd")
        sock = dir.file("containerd.sock")
        let conf = dir.write("config.toml", """
        version = 2
        root = "\(dir.path)/root"
        state = "\(dir.path)/state"
        disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
        [grpc]
          address = "\(sock)"
        [ttrpc]
          address = "\(sock).ttrpc"
        [debug]
          address = "\(sock).debug"
        """)
        proc = try BackgroundProcess(test, ["containerd", "--config", conf], logPath: dir.file("containerd.log"))
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: sock) && Date() < deadline { usleep(100_000) }
    }

    func ctr(_ args: [String], timeout: Double = 180) throws -> RunResult {
        try runCommand(["ctr", "--address", sock, "-n", "test"] + args, timeout: timeout)
    }

    func stop() { proc.stop() }
}
