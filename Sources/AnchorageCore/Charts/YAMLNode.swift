/// A YAML value with the source lines it came from, so a document can be
/// edited in place (replace or drop a node's lines) instead of re-emitted.
public indirect enum YAMLValue: Sendable, Equatable {
    case null
    case scalar(String)
    case sequence([YAMLNode])
    case mapping([YAMLPair])
}

public struct YAMLNode: Sendable, Equatable {
    public var value: YAMLValue
    /// First source line (0-based) and one past the last.
    public var firstLine: Int
    public var endLine: Int

    public subscript(key: String) -> YAMLNode? {
        if case .mapping(let pairs) = value { return pairs.first { $0.key == key }?.node }
        return nil
    }

    public var string: String? {
        if case .scalar(let s) = value { return s }
        return nil
    }

    public var items: [YAMLNode]? {
        if case .sequence(let i) = value { return i }
        return nil
    }

    public var pairs: [YAMLPair]? {
        if case .mapping(let p) = value { return p }
        return nil
    }
}

public struct YAMLPair: Sendable, Equatable {
    public let key: String
    /// The line holding the key, and the column where the key starts.
    public let keyLine: Int
    public let keyColumn: Int
    public let node: YAMLNode
}

public struct YAMLError: Error, Equatable, CustomStringConvertible, Sendable {
    public let line: Int   // 1-based
    public let message: String
    public var description: String { "line \(line): \(message)" }
}
