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
