/// The last step of a sync rule with `-> NS/NAME`: the image, verified into
/// the cache as for any sync, is copied into the hosted repository with its
/// digests unchanged (Harbor's pull replication). Blobs are hard links to
/// the cache's files; manifests are the exact bytes, children before the
/// index, the tag last. The copy stays when the upstream deletes the image
/// and is never evicted.
struct HostedPublisher {
    let cache: FileBlobStore
    let hosted: HostedStore

    /// Nil when the item is in the hosted repository, else why not.
    func publish(_ item: SyncItem) -> String? {
        guard let into = item.into, case .image(_, _, let ref) = item.target, let top = item.manifests.first else { return nil }
        let (ns, name) = (into.namespace, into.name)
        for b in item.blobs {
            guard hosted.adopt(b.digest, from: cache.layout.blob(b.digest)), hosted.linkLayer(ns, name, b.digest) else {
                return "cannot copy \(b.digest) into \(ns)/\(name.value)"
            }
        }
        let tag: Tag? = if case .tag(let t) = ref { t } else { nil }
        for d in item.manifests.dropFirst() + [top] {
            guard let bytes = cache.readAll(d, limit: ManifestService.maxManifestBytes), Hasher.digest(bytes, d.algorithm) == d else {
                return "manifest \(d) is not in the cache"
            }
            let type = cache.mediaType(d) ?? ManifestService.mediaType(nil, bytes)
            let subject = (try? ManifestDocument.parse(bytes, contentType: type).get())?.subject
            let stored = hosted.mutate {
                hosted.storeManifest(ns, name, bytes, digest: d, mediaType: type, tag: d == top ? tag : nil, subject: subject, pushedBy: "sync")
            }
            guard stored == .stored else { return "cannot store manifest \(d) in \(ns)/\(name.value)" }
        }
        return nil
    }
}
