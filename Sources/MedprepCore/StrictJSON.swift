

/// A strict RFC 8259 parser for index.json (what `verify` must not take on trust): integers are
/// kept exact (`.int` when they fit in Int, otherwise `.number`), object keys keep their order,
/// duplicate keys are reported (the last value is kept, as most parsers do silently) and nesting is limited, so an
/// edited or hostile file gives a message, never a trap.
public enum StrictJSON {
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var line: Int
        public var column: Int
        public var description: String { "\(message) at line \(line), column \(column)" }
    }

    public static let maxDepth = 256

    /// The value, and the paths of keys that appear twice in one object (`cases[3].fold`).
    public static func parse(_ bytes: [UInt8]) throws -> (value: JSON, duplicateKeys: [String]) {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0, path: "")
        p.skipSpace()
        if p.i < bytes.count { throw p.error("unexpected '\(p.show(bytes[p.i]))' after the JSON value") }
        return (v, p.duplicates)
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0
        var duplicates: [String] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String) -> ParseError {
            var line = 1, col = 1
            for b in bytes[0..<min(i, bytes.count)] { if b == 0x0A { line += 1; col = 1 } else { col += 1 } }
            return ParseError(message: message, line: line, column: col)
        }

        func show(_ b: UInt8) -> String { b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16) }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ word: String) throws {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, bytes[i..<(i + w.count)].elementsEqual(w) else { throw error("invalid literal, expected '\(word)'") }
            i += w.count
        }

        mutating func value(depth: Int, path: String) throws -> JSON {
            guard depth < StrictJSON.maxDepth else { throw error("nested more than \(StrictJSON.maxDepth) deep") }
            guard i < bytes.count else { throw error("unexpected end of the file") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, JSON)] = []
                var seen = Set<String>()
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object([]) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
                    let key = try string()
                    let sub = path.isEmpty ? key : "\(path).\(key)"
                    let again = !seen.insert(key).inserted
                    if again { duplicates.append(sub) }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after key '\(key)'") }
                    i += 1
                    skipSpace()
                    let v = try value(depth: depth + 1, path: sub)
                    if again, let at = members.firstIndex(where: { $0.0 == key }) { members[at].1 = v } else { members.append((key, v)) }
                    skipSpace()
                    guard i < bytes.count else { throw error("unexpected end of the file inside an object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw error("expected ',' or '}' in an object, found '\(show(bytes[i]))'")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array([]) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1, path: "\(path)[\(items.count)]"))
                    skipSpace()
                    guard i < bytes.count else { throw error("unexpected end of the file inside an array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw error("expected ',' or ']' in an array, found '\(show(bytes[i]))'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try expect("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try number()
            default:
                throw error("unexpected '\(show(bytes[i]))'")
            }
        }

        mutating func number() throws -> JSON {
            let start = i
            func digits() -> Int {
                let s = i
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
                return i - s
            }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            let n = digits()
            guard n > 0 else { throw error("invalid number") }
            if n > 1 && bytes[intStart] == 0x30 { throw error("invalid number (leading zero)") }
            var integral = true
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1; integral = false
                guard digits() > 0 else { throw error("invalid number (no digits after '.')") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1; integral = false
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw error("invalid number (no digits in the exponent)") }
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if integral, let v = Int(text) { return .int(v) }
            guard let d = Double(text) else { throw error("invalid number '\(text)'") }
            return .number(d)
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw error("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                if b < 0x20 { throw error("control character in a string") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw error("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in a string")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("unpaired surrogate in a string")
                    }
                    out.append(contentsOf: Array(String(UnicodeScalar(code)!).utf8))
                default:
                    throw error("invalid escape '\\\(show(e))' in a string")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw error("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}
