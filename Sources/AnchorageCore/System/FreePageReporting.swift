import Foundation

/// Whether this machine is a VM whose virtio balloon reports free memory to
/// its host (`VIRTIO_BALLOON_F_REPORTING`): free blocks of 2 MiB and more
/// are handed back, and whoever fills one next takes the host's page faults
/// inside the copy. That is what a 2 MiB page-cache folio needs, so it
/// decides `[cache] large_folios = auto` (`LargeFolioPolicy`).
enum FreePageReporting {
    /// The balloon driver's devices; each has a `features` file.
    static let driverDirectory = "/sys/bus/virtio/drivers/virtio_balloon"
    /// VIRTIO_BALLOON_F_REPORTING, from linux/virtio_balloon.h.
    static let featureBit = 5

    /// True when any balloon device on this machine negotiated free page
    /// reporting; false on bare metal, without the driver, or unreadable.
    static func isActive(driverDirectory: String = driverDirectory) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: driverDirectory) else { return false }
        return names.filter { $0.hasPrefix("virtio") }.contains { name in
            guard let text = try? String(contentsOfFile: "\(driverDirectory)/\(name)/features", encoding: .utf8) else { return false }
            return reports(features: text)
        }
    }

    /// `features` is the negotiated feature bits as '0'/'1' characters,
    /// bit 0 first.
    static func reports(features: String) -> Bool {
        let bits = Array(features.utf8.prefix(featureBit + 1))
        return bits.count > featureBit && bits[featureBit] == UInt8(ascii: "1")
    }
}
