import Foundation

/// `username` with `password` or `password_file`, as any upstream section
/// takes them: read once, validated together, errors on the right line.
struct UpstreamCredentials {
    let username: String?
    let password: String?

    init(_ r: SectionReader) throws(ConfigError) {
        if r.isSet("password") && r.isSet("password_file") {
            throw r.error("password_file", "set either password or password_file, not both")
        }
        var password: String?
        if let file = r.string("password_file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw r.error("password_file", "cannot read password_file '\(file)'")
            }
            password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        } else {
            password = r.string("password")
        }
        let username = r.string("username")
        if username != nil && password == nil {
            throw r.error("username", "username needs password or password_file")
        }
        if password != nil && username == nil {
            throw r.error(r.isSet("password") ? "password" : "password_file", "password without username")
        }
        self.username = username
        self.password = password
    }
}
