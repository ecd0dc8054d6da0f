/// Which loop serves a new connection: the one with the fewest open
/// connections, the accepting loop on a tie. A connection stays on its loop
/// for its life, and SO_REUSEPORT's hash alone can leave one core with most
/// of a burst of long downloads while the other idles.
enum ConnectionPlacement {
    static func choose(accepting: Int, open: [Int]) -> Int {
        var best = accepting
        for (i, n) in open.enumerated() where n < open[best] { best = i }
        return best
    }
}
