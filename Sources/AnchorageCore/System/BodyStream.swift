/// Body bytes that become available over time: a blob still arriving
/// from its upstream, or what a remote store or a peer node returns.
/// A connection sends what is `available()`, then asks to be woken when
/// more is. A source that verifies its content withholds the tail until the
/// digest matched, so `available()` never reaches `length` for bytes that
/// turn out to be wrong.
public protocol BodyStream: AnyObject, Sendable {
    /// The total body length.
    var length: Int64 { get }
    /// How many bytes from the start may be sent now, or nil when the
    /// stream failed and every reader must be cut off.
    func available() -> Int64?
    /// Calls `wake` (on any thread, exactly once) when `available()` moved
    /// past `offset` or the stream failed. Returns false if that is already so.
    func notifyWhenAvailable(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> Bool
    /// Copies available bytes at `offset` into `buffer`.
    func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    /// The local file that holds the bytes, if any: a plain connection then
    /// sends the available part with sendfile instead of copying it.
    var localFile: OpenFile? { get }
}
