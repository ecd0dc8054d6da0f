import Foundation
import XCTest

/// Pushes to a hosted namespace from dockerd, containerd and helm (OCI),
/// each then pulling back what it pushed.
final class HostedClientTests: XCTestCase {
    func testDockerPushesAndPullsBack() throws {
        let (m, dir) = try startHostedServer(self)
        let target = "127.0.0.1:\(m.port)/local/team/app:1.4"
        let layout = dir.file("layout")
        try makeImageLayout(layout, tag: "v1", layers: 2, layerSize: 400_000, seed: "docker")
        let archive = dir.file("image.tar")
        let made = try runCommand(["skopeo", "copy", "--quiet", "oci:\(layout):v1", "docker-archive:\(archive):\(target)"], timeout: 120)
        XCTAssertEqual(made.status, 0, made.stderr)

        let dockerd = try Dockerd(self)
        defer { dockerd.stop() }
        XCTAssertEqual(try dockerd.docker(["load", "-i", archive]).status, 0)
        let anonymous = try dockerd.docker(["push", target])
        XCTAssertNotEqual(anonymous.status, 0, "no anonymous pushes")
        let login = try runCommand(["/usr/bin/docker", "--config", dockerd.dir.file("cli"), "-H", "unix://\(dockerd.sock)",
                                    "login", "-u", "alice", "--password-stdin", "127.0.0.1:\(m.port)"], stdin: "pw-a")
        XCTAssertEqual(login.status, 0, login.stderr)
        let pushed = try dockerd.docker(["push", target])
        XCTAssertEqual(pushed.status, 0, pushed.stdout + pushed.stderr + dockerd.proc.log.suffix(2000))
        let reported = try XCTUnwrap(pushed.stdout.range(of: #"digest: sha256:[0-9a-f]{64}"#, options: .regularExpression).map { String(pushed.stdout[$0].dropFirst(8)) })
        let served = try RegistryCalls(base: m.base, credentials: "bob:pw-b", dir: dir).call("HEAD", "/v2/local/team/app/manifests/1.4",
                                                                                              headers: ["Accept": "application/vnd.docker.distribution.manifest.v2+json"])
        XCTAssertEqual(served.header("Docker-Content-Digest"), reported, "the mirror holds the manifest docker pushed")

        let id = try dockerd.docker(["image", "inspect", "--format", "{{.Id}}", target]).stdout
        XCTAssertEqual(try dockerd.docker(["rmi", target]).status, 0)
        let pulled = try dockerd.docker(["pull", target])
        XCTAssertEqual(pulled.status, 0, pulled.stdout + pulled.stderr)
        XCTAssertEqual(try dockerd.docker(["image", "inspect", "--format", "{{.Id}}", target]).stdout, id, "the same image comes back")
        let copy = try runCommand(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", "bob:pw-b", "docker://\(target)", "dir:\(dir.file("back"))"], timeout: 120)
        XCTAssertEqual(copy.status, 0, "every blob verifies against its digest: \(copy.stderr)")
    }

    func testContainerdPushesAndPullsBack() throws {
        let (m, dir) = try startHostedServer(self)
        let host = "127.0.0.1:\(m.port)"
        let layout = dir.file("layout")
        try makeImageLayout(layout, tag: "v1", layers: 3, layerSize: 300_000, seed: "ctr")
        XCTAssertEqual(try runCommand(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "alice:pw-a", "oci:\(layout):v1", "docker://\(host)/local/base/app:v1"], timeout: 120).status, 0)

        let ctrd = try Containerd(self)
        defer { ctrd.stop() }
        let auth = ["--plain-http", "--user", "alice:pw-a"]
        let pull = try ctrd.ctr(["image", "pull"] + auth + ["--snapshotter", "native", "\(host)/local/base/app:v1"])
        XCTAssertEqual(pull.status, 0, pull.stdout + pull.stderr)
        XCTAssertEqual(try ctrd.ctr(["image", "tag", "\(host)/local/base/app:v1", "\(host)/local/ctr/app:v2"]).status, 0)
        let push = try ctrd.ctr(["image", "push"] + auth + ["\(host)/local/ctr/app:v2"])
        XCTAssertEqual(push.status, 0, push.stdout + push.stderr + ctrd.proc.log.suffix(2000))

        let calls = RegistryCalls(base: m.base, credentials: "bob:pw-b", dir: dir)
        let original = try calls.call("HEAD", "/v2/local/base/app/manifests/v1").header("Docker-Content-Digest")
        XCTAssertNotNil(original)
        XCTAssertEqual(try calls.call("HEAD", "/v2/local/ctr/app/manifests/v2").header("Docker-Content-Digest"), original, "byte-identical manifest")
        XCTAssertEqual(try ctrd.ctr(["image", "rm", "\(host)/local/ctr/app:v2", "\(host)/local/base/app:v1"]).status, 0)
        let back = try ctrd.ctr(["image", "pull"] + auth + ["--snapshotter", "native", "\(host)/local/ctr/app:v2"])
        XCTAssertEqual(back.status, 0, back.stdout + back.stderr)
    }

    func testHelmPushesAndPullsAnOCIChart() throws {
        let helm = try Helm(self)
        let (m, dir) = try startHostedServer(self)
        let host = "127.0.0.1:\(m.port)"
        let chart = try helm.package(chart: "hosted-chart", version: "1.2.3", in: dir.path, dest: dir.file("pkg"))
        XCTAssertEqual(try helm.run(["registry", "login", host, "-u", "alice", "-p", "pw-a", "--insecure"]).status, 0)
        let push = try helm.run(["push", chart, "oci://\(host)/local/charts"])
        XCTAssertEqual(push.status, 0, push.stdout + push.stderr)
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)   // helm 3.8 needs -d to exist
        let pull = try helm.run(["pull", "oci://\(host)/local/charts/hosted-chart", "--version", "1.2.3", "-d", out])
        XCTAssertEqual(pull.status, 0, pull.stdout + pull.stderr)
        XCTAssertEqual(try sha256File("\(out)/hosted-chart-1.2.3.tgz"), try sha256File(chart), "the archive comes back byte-identical")
        XCTAssertTrue(m.accessLines("/v2/local/charts/hosted-chart/manifests/1.2.3").contains { $0.contains("method=PUT") && $0.contains("status=201") }, m.log)
    }
}
