import Foundation
import XCTest
@testable import AnchorageCore

/// `FileWindow`: the bytes a window exposes, where it ends, and that its
/// slot's address range is reserved again after every window.
final class FileWindowTests: XCTestCase {
    /// A file of `size` bytes whose byte i is (i * 7 + i / 4096) & 0xff.
    private func patterned(_ dir: TempDir, _ size: Int) throws -> (path: String, bytes: [UInt8]) {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 4096) }
        let path = dir.file("blob")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    /// A /proc file whole (they report no size, so read until the end).
    private func readProc(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The /proc/self/maps line of the mapping that starts at `address`.
    private func mapsLine(_ address: UnsafeMutableRawPointer) throws -> String? {
        let maps = readProc("/proc/self/maps")
        let prefix = String(UInt(bitPattern: address), radix: 16) + "-"
        return maps.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
    }

    func testWindowsExposeTheRightBytesUpToTheBlockEndAndTheSlotIsReservedAgain() throws {
        let dir = TempDir(self, "filewindow")
        let size = 5 * WindowSlot.size + 12_345
        let (path, bytes) = try patterned(dir, size)
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let slot = WindowSlot()
        let base = try XCTUnwrap(slot.base)
        XCTAssertEqual(UInt(bitPattern: base) % UInt(WindowSlot.size), 0, "the slot is block-aligned")
        let mib = 1 << 20
        // (offset, count asked, count exposed): inside a block, up to a block
        // end, across one (cut at its end), in the last, partial block.
        let cases: [(Int, Int, Int)] = [
            (0, mib, mib), (mib - 7, mib, mib), (WindowSlot.size - 100, mib, 100), (3 * WindowSlot.size + 4097, mib, mib),
            (5 * WindowSlot.size - 1000, 5000, 1000), (5 * WindowSlot.size + 10, 12_000, 12_000),
        ]
        for (offset, count, expected) in cases {
            do {
                guard let w = FileWindow(fd: fd, offset: Int64(offset), count: count, slot: slot) else {
                    XCTFail("no window at offset \(offset)")
                    continue
                }
                XCTAssertEqual(w.bytes.count, expected, "offset \(offset)")
                XCTAssertTrue(w.bytes.elementsEqual(bytes[offset..<offset + w.bytes.count]), "bytes at offset \(offset)")
                XCTAssertTrue(try mapsLine(base)?.contains(" r--s ") == true, "the file is mapped while the window lives")
                let block = offset & ~(WindowSlot.size - 1)
                XCTAssertEqual(w.bytes.baseAddress, UnsafeRawPointer(base + (offset - block)), "mapped into the slot")
            }
            let line = try XCTUnwrap(try mapsLine(base), "the slot's range is still ours")
            XCTAssertTrue(line.contains(" ---p "), "reserved again after the window: \(line)")
        }
        // Past the file's end, or a file shorter than asked for: no window.
        XCTAssertTrue(FileWindow(fd: fd, offset: Int64(size - 10), count: mib, slot: slot) == nil)
        XCTAssertTrue(FileWindow(fd: fd, offset: Int64(size + 1), count: 1, slot: slot) == nil)
    }

    /// The ingest writes blobs in whole 2 MiB blocks after the first, so the
    /// page cache can hold each block in one folio and a window maps it with
    /// one page-table entry (smaps: FilePmdMapped). Checked on a blob pulled
    /// through the mirror, against a reference file this test writes itself
    /// in one aligned 2 MiB write (skipped if the kernel or file system does
    /// not make those one folio: then there is nothing to check).
    func testBlocksOfAPulledBlobAreMappedByOneEntry() throws {
        let dir = TempDir(self, "filewindow-folio")
        let reference = dir.file("reference")
        let ref = [UInt8](repeating: 7, count: 2 * WindowSlot.size)
        let rfd = open(reference, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertEqual(ref.withUnsafeBytes { pwrite(rfd, $0.baseAddress, $0.count, 0) }, ref.count)   // one write of 4 MiB
        close(rfd)
        let slot = WindowSlot()
        guard try pmdMappedKiB(reference, offset: WindowSlot.size, slot: slot) == WindowSlot.size / 1024 else {
            throw XCTSkip("this kernel/file system does not keep an aligned 2 MiB write in one page-cache folio")
        }
        let up = try UpstreamRegistry(self)
        try up.push(name: "team/blocks", tag: "v1", layers: 1, layerSize: 9_000_000)
        // Blocks 1 to 3 are whole blocks written after the first; with
        // `large_folios = false` they are written in 64 KiB steps like it,
        // and the default (`auto`) does that only where this machine's
        // balloon reports free pages to its host.
        let auto = FreePageReporting.isActive() ? 0 : WindowSlot.size / 1024
        for (keys, expected) in [("large_folios = true\n", WindowSlot.size / 1024), ("large_folios = false\n", 0), ("", auto)] {
            let m = try AnchorageServer(self, cacheKeys: keys, config: "[registry \"upstream.test\"]\nurl = \(up.url)\ndefault = true\n")
            let manifest = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(m.base)/v2/team/blocks/manifests/v1"]).stdout
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
            let layer = try XCTUnwrap((obj["layers"] as? [[String: Any]])?.first)
            let digest = try XCTUnwrap(layer["digest"] as? String)
            let out = m.dir.file("pulled")
            XCTAssertEqual(try curl(["-o", out, "\(m.base)/v2/team/blocks/blobs/\(digest)"]).status, 0)
            XCTAssertEqual(try sha256File(out), digest)
            let hex = digest.dropFirst(7)
            let cached = "\(m.dir.path)/cache/blobs/sha256/\(hex.prefix(2))/\(hex)"
            for _ in 0..<50 where !FileManager.default.fileExists(atPath: cached) { usleep(100_000) }
            for block in 1...3 {
                XCTAssertEqual(try pmdMappedKiB(cached, offset: block * WindowSlot.size, slot: slot), expected, "block \(block), \(keys)")
            }
        }
    }

    /// Maps the block at `offset` through a window, touches it, and returns
    /// smaps' FilePmdMapped of the mapping.
    private func pmdMappedKiB(_ path: String, offset: Int, slot: WindowSlot) throws -> Int {
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        guard let w = FileWindow(fd: fd, offset: Int64(offset), count: WindowSlot.size, slot: slot) else {
            XCTFail("no window at \(offset) of \(path)")
            return -1
        }
        var sum = 0
        for i in stride(from: 0, to: w.bytes.count, by: 4096) { sum &+= Int(w.bytes[i]) }
        XCTAssertGreaterThanOrEqual(sum, 0)
        let smaps = readProc("/proc/self/smaps")
        // Used after reading smaps: a noncopyable value may end at its last use.
        let start = String(UInt(bitPattern: w.bytes.baseAddress), radix: 16) + "-"
        guard let at = smaps.range(of: "\n" + start) else { return -1 }
        let entry = smaps[at.upperBound...].split(separator: "\n").prefix(30)
        let line = entry.first { $0.hasPrefix("FilePmdMapped:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
}
