/// Sends a file or stream body's bytes on one connection. In the clear, a
/// body whose bytes lie in a local file goes by sendfile(2) (`sendfile =
/// on`); otherwise each turn reads into the loop's copy buffer and sends
/// from it, and what the socket did not take is read again next turn (the
/// bytes up to what is available never change). Under TLS chunks are staged
/// in the connection's own buffer, since SSL_write must be retried with the
/// same bytes until OpenSSL took them.
struct BodySender {
    private var staging: UnsafeMutableRawBufferPointer?
    private var staged = 0, stagedSent = 0

    /// Sends up to `count` bytes at `offset`, from `file` if there is one,
    /// else from `read`.
    mutating func send(on transport: Transport, file: OpenFile?, sendfile: Bool, copyBuffer: UnsafeMutableRawBufferPointer,
                       at offset: Int64, count: Int64,
                       read: (Int64, UnsafeMutableRawBufferPointer) -> IOResult) -> IOResult {
        guard count > 0 else { return .done(0) }
        if transport.isTLS {
            if staging == nil { staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16) }
            guard let buf = staging else { return .failed }
            if stagedSent >= staged {
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buf[0..<Int(min(count, Int64(buf.count)))])
                let r = read(offset, chunk)
                guard case .done(let n) = r else { return r }
                staged = n
                stagedSent = 0
            }
            let r = transport.send(UnsafeRawBufferPointer(rebasing: buf[stagedSent..<staged]))
            if case .done(let n) = r { stagedSent += n }
            return r
        }
        if sendfile, let file { return file.send(to: transport.fd, at: offset, count: count) }
        let chunk = UnsafeMutableRawBufferPointer(rebasing: copyBuffer[0..<Int(min(count, Int64(copyBuffer.count)))])
        let r = read(offset, chunk)
        guard case .done(let n) = r else { return r }
        return transport.send(UnsafeRawBufferPointer(rebasing: copyBuffer[0..<n]))
    }

    mutating func release() {
        staging?.deallocate()
        staging = nil
        staged = 0
        stagedSent = 0
    }
}
