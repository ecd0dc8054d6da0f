import CLinux
import Glibc

/// When a client socket's send buffer is capped instead of left to the
/// kernel's autotuning (up to `tcp_wmem`'s 4 MiB).
///
/// Bodies copied into the socket (the loopback path, see `SendfileMode`) are
/// copied again by the receiver, which is cheaper while those bytes are still
/// in a cache. When many file bodies share a loop the cores are saturated, and
/// a 512 KiB buffer (the kernel reserves 1 MiB, one core's L2 here) measured
/// less CPU per byte. 100 clients x 20 warm layers, the same cache files,
/// alternating rounds: capped on every connection 17 of 18 rounds faster
/// (448 KiB, 640 KiB and 1 MiB did not show it); capped by this policy
/// 6 of 6 rounds faster, 3950-4780 against 3530-4200 MB/s, server and
/// clients 7.95-9.61 against 8.78-10.60 CPU-s per 20 GB. That was in one of
/// the machine's fast phases; in a slow one, 4 rounds measured 3128-4065
/// against 3109-3847, no clear gain (and no loss). A lone stream keeps
/// autotuning: capped, one client's warm 1 GiB fell from 3.6-4.6 to
/// 2.3-4.0 GB/s. A long path keeps it too: a capped buffer bounds what is
/// in flight to 1 MiB per round trip.
enum SendBufferPolicy {
    /// File bodies being sent on one loop from which a new one is capped.
    static let busyLoop = 8
    /// SO_SNDBUF asked for (the kernel reserves twice this).
    static let cappedBytes: Int32 = 512 * 1024
    /// Only paths shorter than this round trip are capped: 1 MiB per RTT
    /// is still 1 GB/s at 1 ms.
    static let shortPathMicros: Int64 = 1000

    /// Caps `fd`'s send buffer if the policy says so; returns whether it did.
    static func capIfBusy(fd: Int32, fileBodiesOnLoop: Int) -> Bool {
        guard fileBodiesOnLoop >= busyLoop else { return false }
        let rtt = anch_tcp_rtt_micros(fd)
        guard rtt >= 0, rtt < shortPathMicros else { return false }
        var size = cappedBytes
        return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size)) == 0
    }
}
