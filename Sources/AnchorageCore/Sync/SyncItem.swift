/// One resolved thing a sync makes local: an image reference or a chart
/// archive, with what planning found it needs.
struct SyncItem {
    enum Target {
        case image(RegistryUpstream, RepositoryName, Reference)
        case chart(ChartRepository, file: String)
    }

    /// One blob to make local, and how to fetch it from its upstream.
    struct Blob {
        let digest: Digest
        let size: Int64
        let fetch: @Sendable (SharedFetch) -> Result<ResponseHead, UpstreamError>
    }

    let target: Target
    /// The `PinSet` key of the rule that named it.
    let ruleKey: String
    /// Where the image is also copied (a hosted repository), if anywhere.
    var into: SyncConfig.HostedTarget?
    var blobs: [Blob] = []
    var manifests: [Digest] = []
    var error: String?
    var fetchedBytes: Int64 = 0

    /// How reports and progress name it: `REGISTRY/NAME:TAG`,
    /// `REGISTRY/NAME@DIGEST` or `charts/REPO/FILE`.
    var label: String {
        switch target {
        case .image(let up, let name, let ref):
            if case .digest(let d) = ref { return "\(up.name)/\(name.value)@\(d)" }
            return "\(up.name)/\(name.value):\(ref)"
        case .chart(let repo, let file):
            return "charts/\(repo.name)/\(file)"
        }
    }
}
