import Foundation
import Glibc

/// `anchorage serve`: wires the configuration to the server and runs until
/// SIGTERM/SIGINT, then drains.
public enum Daemon {
    public static func run(config: Config) -> Int32 {
        // Signals first, before any thread exists: libdispatch reads them
        // through signalfd, which only sees signals every thread blocks
        // (threads inherit this mask), and a SIGTERM that arrives while the
        // server starts must not be lost.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for sig in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&blocked, sig) }
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        let stop = DispatchSemaphore(value: 0)
        let signalQueue = DispatchQueue(label: "anchorage.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            src.setEventHandler { stop.signal() }
            src.resume()
            sources.append(src)
        }
        Log.minimumLevel = config.log.level
        let fdLimit = raiseFileDescriptorLimit()
        if let why = CacheLayout(root: config.cache.path).createRoot() {
            Log.error("cannot create cache directory", ["path": config.cache.path, "error": why])
            return 1
        }
        var options = HTTPServerOptions(listen: config.server.listen)
        if config.server.workers > 0 { options.loops = config.server.workers }
        options.headerTimeoutMillis = UInt64(config.server.headerTimeout.milliseconds)
        options.idleTimeoutMillis = UInt64(config.server.idleTimeout.milliseconds)
        options.sendTimeoutMillis = UInt64(config.server.sendTimeout.milliseconds)
        options.sendfile = config.server.sendfile
        options.accessLog = config.server.accessLog
        options.tlsListen = config.server.tlsListen
        if let cert = config.server.tlsCert, let key = config.server.tlsKey, !config.server.tlsListen.isEmpty {
            do {
                options.tls = try TLSContext(certPath: cert, keyPath: key)
            } catch {
                Log.error("cannot load TLS certificate", ["error": "\(error)"])
                return 1
            }
        }

        let mirror = Mirror(config: config)
        if let tier = mirror.storeTier {
            let store = tier.s3.config.endpoint, bucket = tier.s3.config.bucket
            switch tier.check() {
            case .ok:
                Log.info("object store reachable", ["store": store, "bucket": bucket])
            case .unreachable(let why):
                Log.warn("object store not reachable at start-up: serving from the local tier and the upstream until it is", ["store": store, "bucket": bucket, "error": why])
            case .refused(let why):
                Log.error("object store refused this node (check the [storage] settings, the credentials and the clock): \(why)", ["store": store, "bucket": bucket])
                return 1
            }
        }
        mirror.prepare()
        let sync = SyncRunner(mirror: mirror)
        if let schedule = config.sync.schedule, !config.sync.rules.isEmpty {
            sync.follow(schedule)
        }
        mirror.sharedPins?.start()
        HostedMaintenance(collector: HostedCollector(store: mirror.hostedStore, namespaces: config.hosted), uploads: mirror.uploads).start()
        let counters = mirror.counters
        options.observer = { counters.record($0) }
        let ops = OpsHandler(mirror: mirror, sync: sync, tls: options.tls)
        let gate = AccessGate(allow: config.server.allow, htpasswd: config.auth.htpasswd, failureLimit: config.auth.failureLimit)
        let console = ConsoleHandler(mirror: mirror, sync: sync, gate: gate, status: { [ops] in ops.status() })
        let server = HTTPServer(options: options, handler: MirrorRouter(registry: mirror.registry, charts: mirror.charts, ops: ops,
                                                                      console: console, gate: gate, pool: mirror.pool))
        ops.connections.withLock { $0 = { [weak server] in server?.openConnections ?? 0 } }
        do {
            try server.start()
        } catch {
            Log.error("cannot start server", ["error": "\(error)"])
            return 1
        }
        for addr in server.boundAddresses {
            Log.info("listening", ["addr": addr.description])
        }
        for addr in server.boundTLSAddresses {
            Log.info("listening", ["addr": addr.description, "tls": "true"])
        }
        for w in config.warnings {
            Log.warn(w.message, ["config": w.file, "line": "\(w.line)"])
        }
        for exposed in config.exposedCredentials {
            Log.warn("UPSTREAM CREDENTIALS EXPOSED: \(exposed) has credentials but clients need none; anyone who can reach this mirror pulls with them. Set [auth] htpasswd or [server] allow.", ["section": exposed])
        }
        Log.info("anchorage started", [
            "version": Version.string, "config": config.source, "cache": config.cache.path,
            "max_size": config.cache.maxSize.description, "loops": "\(options.loops)",
            "default_upstream": config.defaultRegistry.url, "fd_limit": "\(fdLimit)",
        ])

        // SIGHUP: reload the TLS certificate and key (new connections use them).
        if let tls = options.tls {
            let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signalQueue)
            hup.setEventHandler {
                do {
                    try tls.reload()
                    Log.info("TLS certificate reloaded", ["cert": tls.certPath])
                } catch {
                    Log.error("TLS reload failed; keeping the previous certificate", ["error": "\(error)"])
                }
            }
            hup.resume()
            sources.append(hup)
        }
        stop.wait()
        Log.info("shutting down", ["grace": config.server.shutdownGrace.description, "open_connections": "\(server.openConnections)"])
        server.shutdown(grace: config.server.shutdownGrace.seconds)
        mirror.manifests.finishWrites()
        Log.info("stopped")
        _ = sources
        return 0
    }
}
