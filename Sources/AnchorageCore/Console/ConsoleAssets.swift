/// The console's three files, compiled in: it needs nothing from other
/// hosts and works offline. The script builds every element through the
/// DOM and sets text with `textContent` (names, labels and chart files are
/// hostile input); the policy below allows nothing that is not this origin's.
enum ConsoleAssets {
    struct File {
        let type: String
        let bytes: [UInt8]
    }

    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    private static let page = File(type: "text/html; charset=utf-8", bytes: Array(ConsolePage.html.utf8))
    private static let style = File(type: "text/css; charset=utf-8", bytes: Array(ConsolePage.css.utf8))
    private static let script = File(type: "text/javascript; charset=utf-8", bytes: Array(ConsoleScript.source.utf8))

    static func file(_ path: String) -> File? {
        switch path {
        case "/": page
        case "/console.css": style
        case "/console.js": script
        default: nil
        }
    }
}
