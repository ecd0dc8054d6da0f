// libFuzzer entry point, compiled into the AnchorageCore module by fuzz/run
// (never part of the package build). FUZZ_TARGET picks the parser.
import Foundation

private let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? "http"

@_cdecl("LLVMFuzzerTestOneInput")
public func anchorageFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch target {
    case "http":
        var p = HTTPRequestParser()
        var buf = Array(bytes)
        // Parse repeatedly, as a connection does with pipelined requests.
        for _ in 0..<8 {
            guard case .request(let n) = buf.withUnsafeBytes({ p.parse($0) }) else { break }
            _ = p.parsed?.queryItems
            buf.removeFirst(n)
            p.reset()
        }
        _ = ByteRangeRequest.parse(String(decoding: bytes, as: UTF8.self), length: 1000)
    case "config":
        _ = try? Config.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.conf")
    case "auth":
        _ = AuthChallenge.parse(String(decoding: bytes, as: UTF8.self))
    case "index":
        if let idx = try? ChartIndex.parse(String(decoding: bytes, as: UTF8.self)) {
            _ = IndexRewriter.rewrite(idx, keepVersions: 2)
        }
    default:
        fatalError("unknown FUZZ_TARGET \(target)")
    }
    return 0
}
