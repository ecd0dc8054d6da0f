/// What a repository name resolves to: today a proxy of an upstream
/// registry (`ProxyRepository`); a hosted repository that takes pushes can
/// sit beside it under the same router. A repository answers every
/// request under `/v2/<name>/` the router sends it, including the methods
/// it does not support, so what it allows is decided in one place.
protocol Repository: Sendable {
    /// The name the router shows in errors and uses for `?ns=` and path
    /// prefixes.
    var name: String { get }
    /// The repository name as this repository stores it (Docker Hub's
    /// one-component names gain `library/`).
    func normalize(_ name: RepositoryName) -> RepositoryName
    func handle(_ route: RegistryRoute, _ request: HTTPRequest, _ responder: HTTPResponder)
}
