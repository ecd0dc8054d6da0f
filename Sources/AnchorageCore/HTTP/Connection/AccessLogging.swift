extension Connection {
    /// One access-log line and one metrics record per finished (or cut) response.
    func logAccess() {
        guard let req = request else { return }
        let micros = monotonicMicros() &- startedMicros
        let bytes = Int64(out.headSent) + out.bodySent
        let bodyBytes = out.bodySent + Int64(max(0, out.headSent - out.headLength))
        if context.options.accessLog {
            AccessLog.write(client: peer.host, method: req.method.description, path: req.target, status: out.status,
                            bytes: bytes, micros: micros, cache: out.cacheStatus?.rawValue)
        }
        if let observe = context.options.observer {
            var record = AccessRecord(method: req.method.description, label: out.label, status: out.status, bytes: bodyBytes,
                                      micros: micros, headMicros: headSentMicros > startedMicros ? headSentMicros - startedMicros : 0,
                                      cache: out.cacheStatus)
            record.loop = loop.index
            observe(record)
        }
    }
}
