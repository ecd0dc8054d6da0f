import Glibc

/// The daemon's housekeeping for hosted namespaces, on a thread of its own:
/// every ten minutes uploads idle past their namespace's grace period are
/// purged and quota use is counted again (other processes change links
/// too); every hour the collector runs (`anchorage gc --hosted` runs it on
/// demand).
struct HostedMaintenance {
    let collector: HostedCollector
    let uploads: UploadTable

    func start() {
        guard !collector.namespaces.isEmpty else { return }
        detachThread(name: "anchorage-hosted-gc") {
            var rounds = 0
            while true {
                sleep(600)
                rounds += 1
                purgeUploads()
                collector.store.recountUsage()
                if rounds % 6 == 0 { collect() }
            }
        }
    }

    func purgeUploads() {
        for ns in collector.namespaces {
            let purged = uploads.purge(idleMillis: UInt64(max(0, ns.grace.milliseconds)), namespace: ns.name)
            if purged > 0 { Log.info("purged abandoned uploads", ["namespace": ns.name, "count": "\(purged)"]) }
        }
    }

    func collect() {
        let report = collector.run(dryRun: false)
        if report.blobs + report.manifests.count + report.tags.count > 0 {
            Log.info("hosted garbage collected", ["blobs": "\(report.blobs)", "bytes": "\(report.bytes)",
                                                  "manifests": "\(report.manifests.count)", "tags": "\(report.tags.count)"])
        }
    }
}
