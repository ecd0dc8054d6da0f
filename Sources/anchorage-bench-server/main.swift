import AnchorageCore
import Foundation

// Benchmark-only: serves one file (any path) and a 1 KiB body (/small)
// through the project's HTTP server, so bench/ can compare the server
// itself with nginx before and apart from the cache.
let args = CommandLine.arguments
guard args.count == 3, let addr = ListenAddress(parsing: args[1]) else {
    FileHandle.standardError.write("usage: anchorage-bench-server HOST:PORT FILE\n".data(using: .utf8)!)
    exit(2)
}
let path = args[2]
let small = [UInt8](repeating: UInt8(ascii: "a"), count: 1024)
let handler = ClosureHandler { req, responder in
    if req.path == "/small" {
        responder.respond(HTTPResponse(status: .ok, body: .bytes(small)))
        return
    }
    guard let f = OpenFile.openForReading(path) else {
        responder.respond(.text(.notFound, "no file"))
        return
    }
    var h = HTTPHeaders()
    h.add("Content-Type", "application/octet-stream")
    responder.respond(HTTPResponse(status: .ok, headers: h, body: .file(f, offset: 0, length: f.size)))
}
var options = HTTPServerOptions(listen: [addr])
options.accessLog = false
let server = HTTPServer(options: options, handler: handler)
do { try server.start() } catch {
    FileHandle.standardError.write("cannot start: \(error)\n".data(using: .utf8)!)
    exit(1)
}
while true { sleep(3600) }
