/// The registry protocol: `/v2/…` requests from Docker, containerd, podman,
/// skopeo, crane and helm (OCI). The router resolves the repository; the
/// repository answers.
final class RegistryHandler: Sendable {
    let router: RegistryRouter
    /// What `/v2/_catalog` lists: the hosted repositories.
    let hosted: [HostedRepository]

    init(router: RegistryRouter, hosted: [HostedRepository] = []) {
        self.router = router
        self.hosted = hosted
    }

    static let baseResponse: HTTPResponse = {
        var h = HTTPHeaders()
        h.add("Docker-Distribution-API-Version", "registry/2.0")
        return .json(.ok, "{}", headers: h)
    }()

    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        if request.path == "/v2/_catalog" { return catalog(request, responder) }
        switch router.route(path: request.path, ns: request.queryValue("ns")) {
        case .failure(let e):
            responder.respond(e.response)
        case .success(let (repository, route)):
            repository.handle(route, request, responder.labeled(label(route, in: repository)))
        }
    }

    /// Every hosted repository by its full name (`NS/NAME`); cached
    /// upstream content is not listed (it is a cache, not a catalog).
    private func catalog(_ request: HTTPRequest, _ responder: HTTPResponder) {
        guard request.method.isRead else { return responder.respond(RegistryError.unsupportedMethod(request.method).response) }
        let page = TagPage(request)
        let hosted = self.hosted
        guard let pool = hosted.first?.pool else { return responder.respond(page.catalog([])) }
        pool.submit {
            let names = hosted.flatMap { h in h.store.repositories(h.name).compactMap { RepositoryName("\(h.name)/\($0.value)") } }
            responder.respond(page.catalog(names))
        }
    }

    /// The metrics' name for what `route` asks of `repository`: content is
    /// counted under its repository, prefixed by the mirror's name for it
    /// unless it is the default one.
    private func label(_ route: RegistryRoute, in repository: any Repository) -> RouteLabel {
        func named(_ name: RepositoryName) -> String {
            repository.name == router.defaultRepository.name ? name.value : "\(repository.name)/\(name.value)"
        }
        switch route {
        case .base: return RouteLabel(.registryBase)
        case .manifest(let name, _): return RouteLabel(.registryManifest, repository: named(name))
        case .blob(let name, _): return RouteLabel(.registryBlob, repository: named(name))
        case .tags: return RouteLabel(.registryTags)
        case .uploads: return .other
        case .referrers(let name, _): return RouteLabel(.registryManifest, repository: named(name))
        }
    }
}
