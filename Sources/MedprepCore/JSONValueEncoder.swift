/// Encodes an `Encodable` value into `JSON`, keeping object keys in the order the value encodes
/// them (Foundation's JSONEncoder on Linux orders them by hash, or sorted). With it a typed
/// value (a manifest, an index record) is written with its keys where its type declares them,
/// byte for byte the same on every run.
public struct JSONValueEncoder {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSON {
        let root = Node()
        try value.encode(to: TreeEncoder(node: root, codingPath: []))
        return root.json
    }
}

/// A value being built; containers fill it in place.
private final class Node {
    enum Kind { case empty, scalar(JSON), object([(String, Node)]), array([Node]) }
    var kind = Kind.empty

    var json: JSON {
        switch kind {
        case .empty: return .object([])
        case .scalar(let j): return j
        case .object(let fields): return .object(fields.map { ($0.0, $0.1.json) })
        case .array(let items): return .array(items.map(\.json))
        }
    }

    /// The child under `key` (replacing an earlier one: the last encode of a key wins).
    func child(_ key: String) -> Node {
        var fields: [(String, Node)] = []
        if case .object(let f) = kind { fields = f }
        let n = Node()
        if let i = fields.firstIndex(where: { $0.0 == key }) { fields[i].1 = n } else { fields.append((key, n)) }
        kind = .object(fields)
        return n
    }

    func append() -> Node {
        var items: [Node] = []
        if case .array(let a) = kind { items = a }
        let n = Node()
        items.append(n)
        kind = .array(items)
        return n
    }

    func makeObject() { if case .object = kind { return }; kind = .object([]) }
    func makeArray() { if case .array = kind { return }; kind = .array([]) }

    var count: Int { if case .array(let a) = kind { return a.count }; return 0 }
}

private struct TreeEncoder: Encoder {
    let node: Node
    var codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        node.makeArray()
        return Unkeyed(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
}

/// Scalars as JSON; everything else through its own `encode(to:)`.
private func encodeValue<T: Encodable>(_ value: T, into node: Node, codingPath: [CodingKey]) throws {
    switch value {
    case let v as JSON: node.kind = .scalar(v)
    case let v as Bool: node.kind = .scalar(.bool(v))
    case let v as String: node.kind = .scalar(.string(v))
    case let v as Double: node.kind = .scalar(.number(v))
    case let v as Float: node.kind = .scalar(.number(Double(v)))
    case let v as Int: node.kind = .scalar(.int(v))
    case let v as Int8: node.kind = .scalar(.int(Int(v)))
    case let v as Int16: node.kind = .scalar(.int(Int(v)))
    case let v as Int32: node.kind = .scalar(.int(Int(v)))
    case let v as Int64: node.kind = .scalar(.int(Int(v)))
    case let v as UInt8: node.kind = .scalar(.int(Int(v)))
    case let v as UInt16: node.kind = .scalar(.int(Int(v)))
    case let v as UInt32: node.kind = .scalar(.int(Int(v)))
    case let v as UInt64: node.kind = .scalar(v <= UInt64(Int.max) ? .int(Int(v)) : .number(Double(v)))
    case let v as UInt: node.kind = .scalar(v <= UInt(Int.max) ? .int(Int(v)) : .number(Double(v)))
    default: try value.encode(to: TreeEncoder(node: node, codingPath: codingPath))
    }
}

private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    var codingPath: [CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.child(key.stringValue).kind = .scalar(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeValue(value, into: node.child(key.stringValue), codingPath: codingPath + [key])
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let n = node.child(key.stringValue)
        n.makeObject()
        return KeyedEncodingContainer(Keyed<NestedKey>(node: n, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        let n = node.child(key.stringValue)
        n.makeArray()
        return Unkeyed(node: n, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> Encoder { TreeEncoder(node: node.child("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> Encoder { TreeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]) }
}

private struct Unkeyed: UnkeyedEncodingContainer {
    let node: Node
    var codingPath: [CodingKey]
    var count: Int { node.count }

    mutating func encodeNil() throws { node.append().kind = .scalar(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encodeValue(value, into: node.append(), codingPath: codingPath) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let n = node.append()
        n.makeObject()
        return KeyedEncodingContainer(Keyed<NestedKey>(node: n, codingPath: codingPath))
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
        let n = node.append()
        n.makeArray()
        return Unkeyed(node: n, codingPath: codingPath)
    }
    mutating func superEncoder() -> Encoder { TreeEncoder(node: node.append(), codingPath: codingPath) }
}

private struct Single: SingleValueEncodingContainer {
    let node: Node
    var codingPath: [CodingKey]
    mutating func encodeNil() throws { node.kind = .scalar(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encodeValue(value, into: node, codingPath: codingPath) }
}
