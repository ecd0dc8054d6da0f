import Glibc

/// The whole machine's CPU time, from `/proc/stat`: what a loopback client
/// and its server cost together (`LoopbackSendChooser`).
enum MachineCPU {
    /// Clock ticks (USER_HZ) all CPUs spent busy since boot: user, nice,
    /// system, irq and softirq (not idle, iowait or the host's steal);
    /// nil where `/proc/stat` cannot be read.
    static func busyTicks() -> Int64? {
        let fd = open("/proc/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // The first line ("cpu  user nice system idle iowait irq softirq …")
        // is well inside the first 256 bytes.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buf in
            let n = read(fd, buf.baseAddress, buf.count)
            guard n > 0 else { return nil }
            return parseBusyTicks(UnsafeBufferPointer(rebasing: buf[0..<n]))
        }
    }

    /// Parses the aggregate `cpu` line at the start of `/proc/stat`'s text.
    static func parseBusyTicks(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard text.count > 4, text[0] == UInt8(ascii: "c"), text[1] == UInt8(ascii: "p"),
              text[2] == UInt8(ascii: "u"), text[3] == UInt8(ascii: " ") else { return nil }
        var fields: [Int64] = []
        var value: Int64 = 0, inNumber = false
        for byte in text[4...] {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                value = value &* 10 &+ Int64(byte - UInt8(ascii: "0"))
                inNumber = true
            } else {
                if inNumber { fields.append(value) }
                value = 0
                inNumber = false
                if byte == UInt8(ascii: "\n") || fields.count == 7 { break }
            }
        }
        guard fields.count >= 7 else { return nil }
        // user nice system idle iowait irq softirq
        return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    }
}
