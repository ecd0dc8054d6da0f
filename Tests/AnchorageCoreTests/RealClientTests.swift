import Foundation
import XCTest

/// Real pulling clients with their own mirror configuration. Each asserts on
/// the mirror's side (its access log) that the mirror served the pull, since
/// these clients fall back to the upstream silently when a mirror fails.
final class RealClientTests: XCTestCase {
    /// containerd with `hosts.toml`: requests carry `?ns=<upstream host>`.
    func testContainerdPullsThroughHostsTomlMirror() throws {
        try containerdPull(hostsDirName: nil)
    }

    /// containerd's `_default` hosts directory: one mirror for every registry.
    func testContainerdDefaultHostsDirectory() throws {
        try containerdPull(hostsDirName: "_default")
    }

    private func containerdPull(hostsDirName: String?) throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/app", tag: "v1", layers: 2, layerSize: 500_000)
        // The registry section is named after the upstream host, as containerd's ns says.
        let m = try AnchorageServer(self, config: "[registry \"\(up.host)\"]\nurl = \(up.url)\n")
        let ctrd = try Containerd(self)
        defer { ctrd.stop() }
        let dir = ctrd.dir
        if let name = hostsDirName {
            dir.write("certs.d/\(name)/hosts.toml", """
            [host."http://127.0.0.1:\(m.port)"]
              capabilities = ["pull", "resolve"]
            """)
        } else {
            dir.write("certs.d/\(up.host)/hosts.toml", """
            server = "http://\(up.host)"
            [host."http://127.0.0.1:\(m.port)"]
              capabilities = ["pull", "resolve"]
            """)
        }
        let r = try ctrd.ctr(["image", "pull", "--plain-http", "--hosts-dir", ctrd.hostsDir, "--snapshotter", "native", "\(up.host)/team/app:v1"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr + ctrd.proc.log)
        // containerd percent-encodes the ns value.
        let served = m.accessLines("ns=127.0.0.1%3A\(up.port)")
        XCTAssertTrue(served.contains { $0.contains("/manifests/v1?") && $0.contains("status=200") }, m.log)
        XCTAssertTrue(served.contains { $0.contains("/blobs/sha256:") && $0.contains("status=200") }, m.log)
    }

    /// podman with a `registries.conf` mirror whose location carries a path
    /// naming a non-default upstream.
    func testPodmanPullsThroughAPathPrefixedMirror() throws {
        let hub = try UpstreamRegistry(self)
        let other = try UpstreamRegistry(self)
        try other.push(name: "team/tool", tag: "v3", layers: 2, layerSize: 200_000, docker: true)
        let m = try AnchorageServer(self, config: "[registry \"docker.io\"]\nurl = \(hub.url)\ndefault = true\n[registry \"other.test\"]\nurl = \(other.url)\n")
        let dir = TempDir(self, "podman")
        let registries = dir.write("registries.conf", """
        unqualified-search-registries = []
        [[registry]]
        prefix = "other.test"
        location = "other.test"
        [[registry.mirror]]
        location = "127.0.0.1:\(m.port)/other.test"
        insecure = true
        """)
        let storage = dir.write("storage.conf", """
        [storage]
        driver = "vfs"
        graphroot = "\(dir.path)/graph"
        runroot = "\(dir.path)/run"
        """)
        let r = try runCommand(["podman", "--root", "\(dir.path)/graph", "--runroot", "\(dir.path)/run", "--storage-driver", "vfs",
                                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", "\(dir.path)/tmp",
                                "pull", "other.test/team/tool:v3"],
                               env: ["CONTAINERS_REGISTRIES_CONF": registries, "CONTAINERS_STORAGE_CONF": storage], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        // podman falls back silently: the mirror's own log must show it served the pull.
        let lines = m.accessLines("/v2/other.test/team/tool/")
        XCTAssertTrue(lines.contains { $0.contains("/manifests/v3") && $0.contains("status=200") }, m.log)
        XCTAssertTrue(lines.contains { $0.contains("/blobs/sha256:") && $0.contains("status=200") }, m.log)
    }

    /// dockerd with `daemon.json` "registry-mirrors": `docker pull alpine:3`
    /// asks the mirror for `/v2/library/alpine/manifests/3`.
    func testDockerdPullsThroughRegistryMirrors() throws {
        let up = try UpstreamRegistry(self)
        try up.push(name: "library/alpine", tag: "3", layers: 2, layerSize: 300_000, docker: true)
        let m = try AnchorageServer(self, config: "[registry \"docker.io\"]\nurl = \(up.url)\n")
        // dockerd falls back to Docker Hub when a mirror fails: pin those
        // names to loopback while the test runs, so nothing leaves the host.
        let hosts = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        addTeardownBlock { try? hosts.write(toFile: "/etc/hosts", atomically: false, encoding: .utf8) }
        try (hosts + "\n127.0.0.1 registry-1.docker.io index.docker.io auth.docker.io docker.io production.cloudflare.docker.com\n")
            .write(toFile: "/etc/hosts", atomically: false, encoding: .utf8)

        let dockerd = try Dockerd(self, mirrors: ["http://127.0.0.1:\(m.port)"])
        defer { dockerd.stop() }
        let r = try dockerd.docker(["pull", "alpine:3"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr + dockerd.proc.log.suffix(3000))
        let lines = m.accessLines("/v2/library/alpine/")
        XCTAssertTrue(lines.contains { $0.contains("/manifests/3") && $0.contains("status=200") }, m.log)
        XCTAssertTrue(lines.contains { $0.contains("/blobs/sha256:") && $0.contains("status=200") }, m.log)
    }
}
