// swift-tools-version:6.0
import PackageDescription

// No third-party Swift packages: the mirror sits in its users' supply chain.
// libcurl and OpenSSL are Debian system libraries reached through module maps.
let package = Package(
    name: "Anchorage",
    products: [
        .executable(name: "anchorage", targets: ["anchorage"]),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // zlib (Debian's zlib1g-dev, a libcurl dependency) for gzip'd index.yaml.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Linux calls Swift's Glibc module does not export (epoll, eventfd, …).
        .target(name: "CLinux"),
        .target(
            name: "AnchorageCore",
            dependencies: ["CCurl", "COpenSSL", "CZlib", "CLinux"]
        ),
        .executableTarget(
            name: "anchorage",
            dependencies: ["AnchorageCore"]
        ),
        // Benchmark-only: serves one file through the same HTTP server code.
        .executableTarget(
            name: "anchorage-bench-server",
            dependencies: ["AnchorageCore"]
        ),
        .testTarget(
            name: "AnchorageCoreTests",
            dependencies: ["AnchorageCore"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
