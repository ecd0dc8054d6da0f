import Glibc

/// The daemon's housekeeping for hosted namespaces, on a thread of its own:
/// every ten minutes uploads idle past their namespace's grace period are
/// purged, quota use is counted again (other processes and nodes change
/// links too) and, with an object store, local copies of content another
/// node collected are dropped; every hour the collector runs (`anchorage gc
/// --hosted` runs it on demand; with several nodes, one at a time).
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
                trimLocalCopies()
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

    func trimLocalCopies() {
        let grace = collector.namespaces.map(\.grace.milliseconds).max() ?? HostedConfig(name: "-").grace.milliseconds
        let trimmed = collector.store.trimLocalCopies(graceMillis: grace)
        if trimmed > 0 { Log.info("dropped local copies of hosted blobs the object store no longer holds", ["count": "\(trimmed)"]) }
    }

    func collect() {
        let report = collector.run(dryRun: false)
        if let skipped = report.skipped { return Log.info("hosted garbage not collected", ["reason": skipped]) }
        if report.blobs + report.manifests.count + report.tags.count > 0 {
            Log.info("hosted garbage collected", ["blobs": "\(report.blobs)", "bytes": "\(report.bytes)",
                                                  "manifests": "\(report.manifests.count)", "tags": "\(report.tags.count)"])
        }
    }
}
