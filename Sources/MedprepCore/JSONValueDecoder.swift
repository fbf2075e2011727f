/// Decodes a `Decodable` value from `JSON` (the pair of `JSONValueEncoder`). Object keys keep
/// their file order (a `JSON` field of the value, such as index.json's free-form `parameters`,
/// comes back exactly as written), integers must be exact (1.0 counts, 1.5 and 1e30 do not), and
/// an error names the path of the value that does not fit ("cases[2].fold: expected an integer").
public struct JSONValueDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from json: JSON) throws -> T {
        try decodeValue(type, json, path: [])
    }
}

/// What went wrong and where: `path` in the dotted/indexed form verify prints.
public struct JSONValueDecodingError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

private func describe(_ path: [CodingKey]) -> String {
    var s = ""
    for k in path {
        if let i = (k as? IndexKey)?.intValue { s += "[\(i)]" } else {
            s += s.isEmpty ? k.stringValue : "." + k.stringValue
        }
    }
    return s
}

private func failure(_ path: [CodingKey], _ message: String) -> JSONValueDecodingError {
    JSONValueDecodingError(path: describe(path), message: message)
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String
    init(_ i: Int) { intValue = i; stringValue = String(i) }
    init?(intValue: Int) { self.init(intValue) }
    init?(stringValue: String) { return nil }
}


/// Scalars directly; `JSON` itself as it is; everything else through its `init(from:)`.
private func decodeValue<T: Decodable>(_ type: T.Type, _ j: JSON, path: [CodingKey]) throws -> T {
    if T.self == JSON.self { return j as! T }
    if let v = try scalar(type, j, path: path) { return v }
    return try T(from: TreeDecoder(value: j, codingPath: path))
}

private func integer(_ j: JSON, path: [CodingKey]) throws -> Int {
    guard let i = j.intValue else { throw failure(path, "expected an integer, found \(j.kind) (\(j.serialized()))") }
    return i
}

private func scalar<T>(_ type: T.Type, _ j: JSON, path: [CodingKey]) throws -> T? {
    func int<I: FixedWidthInteger>(_: I.Type) throws -> I {
        let v = try integer(j, path: path)
        guard let r = I(exactly: v) else { throw failure(path, "\(v) does not fit in \(I.self)") }
        return r
    }
    switch type {
    case is Bool.Type:
        guard case .bool(let b) = j else { throw failure(path, "expected a boolean, found \(j.kind)") }
        return (b as! T)
    case is String.Type:
        guard case .string(let s) = j else { throw failure(path, "expected a string, found \(j.kind)") }
        return (s as! T)
    case is Double.Type, is Float.Type:
        let d: Double
        switch j {
        case .int(let i): d = Double(i)
        case .number(let x): d = x
        default: throw failure(path, "expected a number, found \(j.kind)")
        }
        return type is Double.Type ? (d as! T) : (Float(d) as! T)
    case is Int.Type: return (try int(Int.self) as! T)
    case is Int8.Type: return (try int(Int8.self) as! T)
    case is Int16.Type: return (try int(Int16.self) as! T)
    case is Int32.Type: return (try int(Int32.self) as! T)
    case is Int64.Type: return (try int(Int64.self) as! T)
    case is UInt.Type: return (try int(UInt.self) as! T)
    case is UInt8.Type: return (try int(UInt8.self) as! T)
    case is UInt16.Type: return (try int(UInt16.self) as! T)
    case is UInt32.Type: return (try int(UInt32.self) as! T)
    case is UInt64.Type: return (try int(UInt64.self) as! T)
    default: return nil
    }
}

private struct TreeDecoder: Decoder {
    let value: JSON
    var codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = value else { throw failure(codingPath, "expected an object, found \(value.kind)") }
        return KeyedDecodingContainer(Keyed<Key>(fields: fields, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw failure(codingPath, "expected an array, found \(value.kind)") }
        return Unkeyed(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { Single(value: value, codingPath: codingPath) }
}

private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let fields: [(String, JSON)]
    var codingPath: [CodingKey]

    var allKeys: [Key] { fields.compactMap { Key(stringValue: $0.0) } }
    func contains(_ key: Key) -> Bool { fields.contains { $0.0 == key.stringValue } }

    private func field(_ key: Key) throws -> JSON {
        guard let v = fields.last(where: { $0.0 == key.stringValue })?.1 else {
            throw failure(codingPath, "has no '\(key.stringValue)'")
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try field(key) == .null }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeValue(type, try field(key), path: codingPath + [key])
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try TreeDecoder(value: try field(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try TreeDecoder(value: try field(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder { TreeDecoder(value: .object(fields), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { TreeDecoder(value: try field(key), codingPath: codingPath + [key]) }
}

private struct Unkeyed: UnkeyedDecodingContainer {
    let items: [JSON]
    var codingPath: [CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [JSON], codingPath: [CodingKey]) { self.items = items; self.codingPath = codingPath }

    private mutating func next() throws -> (JSON, [CodingKey]) {
        guard !isAtEnd else { throw failure(codingPath, "has only \(items.count) items") }
        defer { currentIndex += 1 }
        return (items[currentIndex], codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, p) = try next()
        return try decodeValue(type, v, path: p)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, p) = try next()
        return try TreeDecoder(value: v, codingPath: p).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        let (v, p) = try next()
        return try TreeDecoder(value: v, codingPath: p).unkeyedContainer()
    }
    mutating func superDecoder() throws -> Decoder {
        let (v, p) = try next()
        return TreeDecoder(value: v, codingPath: p)
    }
}

private struct Single: SingleValueDecodingContainer {
    let value: JSON
    var codingPath: [CodingKey]
    func decodeNil() -> Bool { value == .null }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type, value, path: codingPath) }
}

/// `JSON` is a value of any shape: it encodes as itself through `JSONValueEncoder` (and as the
/// equivalent structure through other encoders) and decodes as whatever is there.
extension JSON: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    public init(from decoder: Decoder) throws {
        if let c = try? decoder.container(keyedBy: Key.self) {
            self = .object(try c.allKeys.map { ($0.stringValue, try c.decode(JSON.self, forKey: $0)) })
        } else if var c = try? decoder.unkeyedContainer() {
            var items: [JSON] = []
            while !c.isAtEnd { items.append(try c.decode(JSON.self)) }
            self = .array(items)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else { self = .string(try c.decode(String.self)) }
        }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .int(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .number(let d): var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(v) }
        case .object(let o):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in o { try c.encode(v, forKey: Key(k)) }
        }
    }
}
