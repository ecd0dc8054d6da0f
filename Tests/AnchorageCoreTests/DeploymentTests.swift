import Foundation
import XCTest

/// contrib/: what can be linted here is linted, and what it renders is a
/// configuration the binary accepts.
final class DeploymentTests: XCTestCase {
    private var repoRoot: String {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        return u.path
    }

    /// The `mirror.conf: |` block of a rendered manifest.
    private func embeddedConfig(_ yaml: String) -> String {
        var out: [Substring] = []
        var inBlock = false, indent = 0
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if inBlock {
                let ind = line.prefix { $0 == " " }.count
                if !line.trimmingCharacters(in: .whitespaces).isEmpty && ind < indent { break }
                out.append(line.dropFirst(min(indent, ind)))
            } else if line.trimmingCharacters(in: .whitespaces) == "mirror.conf: |" {
                inBlock = true
                indent = line.prefix { $0 == " " }.count + 2
            }
        }
        return out.joined(separator: "\n")
    }

    func testHelmChartLintsAndRendersAValidConfig() throws {
        let helm = try Helm(self)
        let chart = "\(repoRoot)/contrib/helm/anchorage"
        let lint = try helm.run(["lint", chart])
        XCTAssertEqual(lint.status, 0, lint.stdout + lint.stderr)
        let tpl = try helm.run(["template", "demo", chart, "--set", "charts[0].name=bitnami,charts[0].url=https://charts.example.com"])
        XCTAssertEqual(tpl.status, 0, tpl.stderr)
        for kind in ["kind: Deployment", "kind: Service", "kind: PersistentVolumeClaim", "kind: ConfigMap", "readOnlyRootFilesystem: true"] {
            XCTAssertTrue(tpl.stdout.contains(kind), kind)
        }
        let dir = TempDir(self)
        let conf = dir.write("rendered.conf", embeddedConfig(tpl.stdout))
        let check = try runCommand([try anchorageBinary(), "check-config", "--config", conf])
        XCTAssertEqual(check.status, 0, check.stderr + "\n" + embeddedConfig(tpl.stdout))
        XCTAssertTrue(check.stdout.contains("[charts \"bitnami\"]"), check.stdout)
    }

    /// replicas > 1: a StatefulSet whose pods share the object store and
    /// list each other as [cluster] peers; each pod's own URL comes from
    /// its environment, and the rendered config is one the binary accepts
    /// for every pod. Without an object store the chart refuses to render.
    func testHelmChartMultiReplicaModeRendersAClusterConfig() throws {
        let helm = try Helm(self)
        let chart = "\(repoRoot)/contrib/helm/anchorage"
        let refused = try helm.run(["template", "demo", chart, "--set", "replicas=3"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("replicas > 1 needs objectStore.enabled"), refused.stderr)
        let tpl = try helm.run(["template", "demo", chart, "--namespace", "mirrors", "--set",
                                "replicas=3,objectStore.enabled=true,objectStore.endpoint=http://store.example:8333,objectStore.bucket=images,objectStore.credentialsSecret=s3"])
        XCTAssertEqual(tpl.status, 0, tpl.stderr)
        for want in ["kind: StatefulSet", "replicas: 3", "clusterIP: None", "volumeClaimTemplates:", "ANCHORAGE_CLUSTER_SELF", "secretRef: {name: s3}", "sessionAffinity: ClientIP"] {
            XCTAssertTrue(tpl.stdout.contains(want), want)
        }
        XCTAssertFalse(tpl.stdout.contains("kind: Deployment"))
        let dir = TempDir(self)
        let conf = dir.write("cluster.conf", embeddedConfig(tpl.stdout))
        for pod in 0..<3 {
            let me = "http://demo-anchorage-\(pod).demo-anchorage-nodes.mirrors.svc:5000"
            let check = try runCommand([try anchorageBinary(), "check-config", "--config", conf],
                                       env: ["ANCHORAGE_CLUSTER_SELF": me, "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"])
            XCTAssertEqual(check.status, 0, check.stderr + "\n" + embeddedConfig(tpl.stdout))
            XCTAssertTrue(check.stdout.contains("self = \(me)") && check.stdout.contains("bucket = images"), check.stdout)
        }
        let manifest = try String(contentsOfFile: "\(repoRoot)/contrib/kubernetes/anchorage-cluster.yaml", encoding: .utf8)
        XCTAssertTrue(manifest.contains("sessionAffinity: ClientIP"))
        let check = try runCommand([try anchorageBinary(), "check-config", "--config", dir.write("k8s-cluster.conf", embeddedConfig(manifest))],
                                   env: ["ANCHORAGE_CLUSTER_SELF": "http://anchorage-anchorage-1.anchorage-anchorage-nodes.anchorage.svc:5000", "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"])
        XCTAssertEqual(check.status, 0, check.stderr)
    }

    func testKubernetesManifestCarriesAValidConfig() throws {
        let yaml = try String(contentsOfFile: "\(repoRoot)/contrib/kubernetes/anchorage.yaml", encoding: .utf8)
        let dir = TempDir(self)
        let conf = dir.write("k8s.conf", embeddedConfig(yaml))
        let check = try runCommand([try anchorageBinary(), "check-config", "--config", conf])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(yaml.contains("path: /readyz") && yaml.contains("path: /healthz"))
    }

    func testSystemdUnitsVerify() throws {
        let dir = TempDir(self, "units")
        let bin = try anchorageBinary()
        for unit in ["anchorage.service", "anchorage-sync.service", "anchorage-sync.timer"] {
            let text = try String(contentsOfFile: "\(repoRoot)/contrib/\(unit)", encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/anchorage", with: bin)
            dir.write(unit, text)
        }
        let r = try runCommand(["systemd-analyze", "verify", dir.file("anchorage.service"), dir.file("anchorage-sync.service"), dir.file("anchorage-sync.timer")])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let unit = try String(contentsOfFile: "\(repoRoot)/contrib/anchorage.service", encoding: .utf8)
        for hardening in ["DynamicUser=yes", "ProtectSystem=strict", "ReadWritePaths=/var/cache/anchorage", "NoNewPrivileges=yes"] {
            XCTAssertTrue(unit.contains(hardening), hardening)
        }
    }
}
