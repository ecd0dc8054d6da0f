import Synchronization

/// Everything the daemon serves from, built once from the configuration:
/// the cache, the upstreams, the protocol modules.
final class Mirror: Sendable {
    let config: Config
    let layout: CacheLayout
    let index: CacheIndex
    let store: FileBlobStore
    let counters = Counters()
    let upstreams: [String: RegistryUpstream]
    let registry: RegistryHandler
    let charts: ChartHandler
    let blobs: BlobService
    let manifests: ManifestService
    let tagIndex: TagIndex
    let referrers: ReferrersService
    let pool: WorkerPool
    /// Pushed content (`[hosted]` namespaces), beside the cache.
    let hostedStore: HostedStore
    let hosted: [HostedRepository]
    let uploads = UploadTable()
    /// The object store shared by several nodes (`[storage] backend = s3`).
    let storeTier: ObjectStoreTier?
    /// Console pins shared with the other nodes through the store.
    let sharedPins: SharedPins?

    init(config: Config) {
        self.config = config
        layout = CacheLayout(root: config.cache.path)
        index = CacheIndex(layout: layout, maxSize: config.cache.maxSize.bytes)
        store = FileBlobStore(layout: layout, index: index)
        let client = CurlClient()
        var ups: [String: RegistryUpstream] = [:]
        for r in config.registries {
            ups[r.name] = RegistryUpstream(config: r, upstream: config.upstream, client: client, counters: counters)
        }
        upstreams = ups
        let pool = WorkerPool(threads: config.upstream.fetchWorkers, name: "anchorage-worker")
        self.pool = pool
        let tags = TagIndex(layout: layout)
        tagIndex = tags
        storeTier = config.storage.s3.flatMap(S3Client.init).map { [store, counters] in ObjectStoreTier(s3: $0, local: store, counters: counters) }
        sharedPins = storeTier.map { [layout, index] in SharedPins(store: $0, layout: layout, index: index) }
        let manifests = ManifestService(store: store, tags: tags, counters: counters,
                                        defaultTTLMillis: config.cache.manifestTTL.milliseconds,
                                        negativeTTLMillis: config.cache.negativeTTL.milliseconds, tier: storeTier)
        let defaultUpstream = ups[config.defaultRegistry.name] ?? RegistryUpstream(config: config.defaultRegistry, upstream: config.upstream, client: client, counters: counters)
        let peers = PeerRing(config.cluster).map { [counters] in PeerFetcher(ring: $0, counters: counters) }
        let blobs = BlobService(store: store, pool: pool, counters: counters, tier: storeTier, peers: peers)
        self.blobs = blobs
        self.manifests = manifests
        let referrers = ReferrersService(defaultTTLMillis: config.cache.manifestTTL.milliseconds)
        self.referrers = referrers
        let proxy = { (u: RegistryUpstream) in ProxyRepository(upstream: u, blobs: blobs, manifests: manifests, referrers: referrers, pool: pool) }
        hostedStore = HostedStore(cacheRoot: config.cache.path, spaceFrom: index, shared: storeTier)
        // Its own counters: a read from the bucket is not an upstream fetch
        // (`fetchShared` counts it as a store-tier hit).
        let firstReads = storeTier.map { [hostedStore] _ in BlobService(store: hostedStore.content, pool: pool, counters: Counters()) }
        hosted = config.hosted.map { [hostedStore, uploads] in HostedRepository(config: $0, store: hostedStore, uploads: uploads, pool: pool, firstReads: firstReads) }
        var repositories = ups.mapValues { proxy($0) as any Repository }
        for h in hosted { repositories[h.name] = h }
        registry = RegistryHandler(router: RegistryRouter(repositories: repositories, defaultRepository: proxy(defaultUpstream)), hosted: hosted)
        var chartOptions = TransferOptions()
        chartOptions.connectTimeoutMillis = Int(config.upstream.connectTimeout.milliseconds)
        chartOptions.stallTimeoutSeconds = max(1, Int(config.upstream.stallTimeout.milliseconds / 1000))
        var repos: [String: ChartRepository] = [:]
        for c in config.charts {
            repos[c.name] = ChartRepository(config: c, client: client, options: chartOptions, layout: layout, pool: pool, counters: counters)
        }
        let hostedCharts = config.hostedCharts.map { [hostedStore, storeTier] in HostedChartRepository(config: $0, layout: hostedStore.layout, pool: pool, shared: storeTier) }
        charts = ChartHandler(repositories: repos, hosted: hostedCharts, blobs: blobs, store: store, registries: ups, pool: pool, counters: counters)
    }

    /// Start-up housekeeping that must not delay serving.
    func prepare() {
        let removed = store.removeStaleTempFiles() + hostedStore.content.removeStaleTempFiles()
        if removed > 0 { Log.info("removed leftover temp files", ["count": "\(removed)"]) }
        index.startScan()
        warmUp()
        Scrubber(store: store, bytesPerSecond: config.cache.scrubRate.bytes, intervalSeconds: config.cache.scrubInterval.seconds, counters: counters).start()
    }

    /// First-use costs, paid before the first pull instead of by it:
    /// OpenSSL's digest set-up here, before the server listens (so it never
    /// competes with a pull that arrives at once), then a connection to each
    /// registry upstream mirror.conf names, on a thread of its own, kept for
    /// the first pull (the built-in Docker Hub default is not contacted
    /// before a client asks for it).
    private func warmUp() {
        for algorithm in [Digest.Algorithm.sha256, .sha512] { _ = Hasher.digest([0], algorithm) }
        let named = config.registriesAreBuiltIn ? [] : upstreams.values.sorted { $0.name < $1.name }
        detachThread(name: "anchorage-warmup") {
            for u in named {
                switch u.warmUp() {
                case .success(let status): Log.debug("upstream reachable", ["upstream": u.name, "status": "\(status)"])
                case .failure(let e): Log.info("upstream not reachable at start-up", ["upstream": u.name, "error": e.description])
                }
            }
        }
    }
}
