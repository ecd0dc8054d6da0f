/// `[cache] large_folios`: whether an ingest writes whole 2 MiB blocks (so
/// the page cache holds each in one folio, mapped by one page-table entry
/// when served: cheaper hits where the copy is the cost) or only 64 KiB
/// steps. `auto` (the default) takes small steps on a VM that reports free
/// memory to its host, where a 2 MiB folio is filled through the host's
/// page faults: there cold 1 GiB pulls measured 151-349 MB/s at 4.19-4.85
/// CPU-s with whole blocks against 498-531 at 2.47-2.75 in 64 KiB steps,
/// while warm sends measured the same either way (see `Ingest.writeStep`).
public enum LargeFolioPolicy: Sendable {
    case auto, on, off

    /// The words `[cache] large_folios` accepts: `auto` or a boolean.
    static let words = ["auto"] + ConfigValueKind.trueWords + ConfigValueKind.falseWords

    init?(word: String) {
        if word == "auto" {
            self = .auto
        } else if ConfigValueKind.trueWords.contains(word) {
            self = .on
        } else if ConfigValueKind.falseWords.contains(word) {
            self = .off
        } else {
            return nil
        }
    }

    var word: String {
        switch self {
        case .auto: "auto"
        case .on: "true"
        case .off: "false"
        }
    }

    /// Whether ingests write whole blocks, given whether this machine's
    /// balloon reports free pages (`FreePageReporting`).
    func writesWholeBlocks(freePageReporting: Bool) -> Bool {
        switch self {
        case .auto: !freePageReporting
        case .on: true
        case .off: false
        }
    }
}
