/// Receives a request body as it arrives, on the connection's loop thread
/// (so `receive` must not block for long: hand bytes on, as a `BlobWriter`
/// takes them). A handler that wants the body asks its responder
/// (`HTTPResponder.readBody(into:)`); one that answers without reading it
/// gets the connection closed after the answer.
public protocol RequestBodyReceiver: AnyObject, Sendable {
    /// The next bytes, in order. False stops reading.
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The body ended: nil when it arrived whole, else why not.
    func finish(_ error: RequestBodyError?)
}

public enum RequestBodyError: Error, Equatable, Sendable {
    /// The client closed or stalled before the body's end.
    case truncated
    /// Chunked framing that does not parse.
    case malformed(String)
    /// The receiver stopped it, or the handler answered first.
    case abandoned
}

/// Decodes a request body's framing (RFC 9112 §6, §7.1): a Content-Length
/// count, or chunks (sizes in hex, extensions ignored, trailers skipped).
/// Pure, so it is tested on every split of its input.
struct RequestBodyDecoder {
    private enum State {
        case counted(remaining: Int64)
        case chunkSize(line: [UInt8])
        case chunkData(remaining: Int64)
        case chunkDataEnd(seen: Int)     // the CRLF after a chunk's data
        case trailer(line: [UInt8])
        case done
    }

    enum Step: Equatable {
        /// All of the input was taken; more is needed.
        case needMore
        /// The body ended after `consumed` bytes of this input.
        case done(consumed: Int)
        case failed(RequestBodyError)
    }

    private var state: State
    static let maxLine = 4096

    init(_ framing: RequestBodyFraming) {
        switch framing {
        case .none: state = .done
        case .contentLength(let n): state = n == 0 ? .done : .counted(remaining: Int64(n))
        case .chunked: state = .chunkSize(line: [])
        }
    }

    var isDone: Bool { if case .done = state { true } else { false } }

    /// Takes bytes from `input`, handing body bytes to `emit` (false from
    /// `emit` stops with `.abandoned`).
    mutating func feed(_ input: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Bool) -> Step {
        var i = 0
        while true {
            switch state {
            case .done:
                return .done(consumed: i)
            case .counted(let remaining):
                guard i < input.count else { return .needMore }
                guard let left = RequestBodyDecoder.pass(input, &i, remaining, emit) else { return .failed(.abandoned) }
                state = left == 0 ? .done : .counted(remaining: left)
            case .chunkSize(var line):
                guard i < input.count else { return .needMore }
                guard RequestBodyDecoder.readLine(input, &i, &line) else {
                    guard line.count <= RequestBodyDecoder.maxLine else { return .failed(.malformed("chunk size line too long")) }
                    state = .chunkSize(line: line)
                    continue
                }
                guard line.last == 13 else { return .failed(.malformed("chunk size line without CRLF")) }
                let digits = line.dropLast().prefix { $0 != 59 }   // up to ';' (extensions)
                guard let size = Int64(String(decoding: digits, as: UTF8.self).trimmed(" \t"), radix: 16), size >= 0 else {
                    return .failed(.malformed("invalid chunk size"))
                }
                state = size == 0 ? .trailer(line: []) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard i < input.count else { return .needMore }
                guard let left = RequestBodyDecoder.pass(input, &i, remaining, emit) else { return .failed(.abandoned) }
                state = left == 0 ? .chunkDataEnd(seen: 0) : .chunkData(remaining: left)
            case .chunkDataEnd(let seen):
                guard i < input.count else { return .needMore }
                guard input[i] == (seen == 0 ? 13 : 10) else { return .failed(.malformed("chunk data not followed by CRLF")) }
                i += 1
                state = seen == 0 ? .chunkDataEnd(seen: 1) : .chunkSize(line: [])
            case .trailer(var line):
                guard i < input.count else { return .needMore }
                guard RequestBodyDecoder.readLine(input, &i, &line) else {
                    guard line.count <= RequestBodyDecoder.maxLine else { return .failed(.malformed("trailer line too long")) }
                    state = .trailer(line: line)
                    continue
                }
                state = line == [13] || line.isEmpty ? .done : .trailer(line: [])
            }
        }
    }

    /// Hands up to `remaining` body bytes from `input[i...]` to `emit`; the
    /// bytes still to come, or nil when `emit` refused them.
    private static func pass(_ input: UnsafeRawBufferPointer, _ i: inout Int, _ remaining: Int64,
                             _ emit: (UnsafeRawBufferPointer) -> Bool) -> Int64? {
        let n = Int(min(remaining, Int64(input.count - i)))
        guard emit(UnsafeRawBufferPointer(rebasing: input[i..<(i + n)])) else { return nil }
        i += n
        return remaining - Int64(n)
    }

    /// Takes one byte into `line`; true when it was the line's LF (not kept).
    private static func readLine(_ input: UnsafeRawBufferPointer, _ i: inout Int, _ line: inout [UInt8]) -> Bool {
        let b = input[i]
        i += 1
        if b == 10 { return true }
        line.append(b)
        return false
    }
}
