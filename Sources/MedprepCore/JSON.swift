/// A JSON value with ordered object keys, so everything medprep writes is byte-stable
/// (same input, same bytes out). Non-finite numbers are written as null.
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool { a.serialized() == b.serialized() }

    /// Compact (`indent == nil`) or pretty-printed text.
    public func serialized(indent: Int? = nil) -> String {
        var out = ""
        write(into: &out, indent: indent, level: 0)
        return out
    }

    private func write(into out: inout String, indent: Int?, level: Int) {
        let nl = indent == nil ? "" : "\n"
        let pad = { (l: Int) in indent.map { String(repeating: " ", count: $0 * l) } ?? "" }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .number(let d): out += JSON.format(d)
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            // Arrays of scalars stay on one line: affines and dims read better that way.
            let inline = indent == nil || a.allSatisfy { if case .array = $0 { return false }; if case .object = $0 { return false }; return true }
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += inline ? (indent == nil ? "," : ", ") : "," }
                if !inline { out += nl + pad(level + 1) }
                v.write(into: &out, indent: indent, level: level + 1)
            }
            if !inline { out += nl + pad(level) }
            out += "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += "," }
                out += nl + pad(level + 1)
                JSON.quote(k, into: &out)
                out += indent == nil ? ":" : ": "
                v.write(into: &out, indent: indent, level: level + 1)
            }
            out += nl + pad(level) + "}"
        }
    }

    /// Shortest round-trip representation; integers without a fraction.
    public static func format(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

extension JSON {
    public static func numbers(_ a: [Double]) -> JSON { .array(a.map { .number($0) }) }
    public static func ints(_ a: [Int]) -> JSON { .array(a.map { .int($0) }) }
}

extension JSON {
    /// Parses JSON text strictly (StrictJSON): exact integers, no duplicate keys, bounded nesting;
    /// a malformed or edited file gives an error with line and column, never a trap.
    public static func parse(_ text: String) throws -> JSON {
        let (value, duplicates) = try StrictJSON.parse(Array(text.utf8))
        if let d = duplicates.first {
            throw StrictJSON.ParseError(message: "key '\(d)' appears twice", line: 0, column: 0)
        }
        return value
    }

    /// Member of an object, nil otherwise.
    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o.first { $0.0 == key }?.1 }
        return nil
    }

    /// What kind of value this is, for messages: "a string", "an object", ...
    public var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// Integers, and whole numbers within Int's range; nil otherwise (never traps).
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .number(let d) where d == d.rounded() && abs(d) < 9.2e18: return Int(d)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
}
