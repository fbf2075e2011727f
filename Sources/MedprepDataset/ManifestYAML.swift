import MedprepCore

/// Writes a manifest value as YAML a person can review: keys in the order the types declare them
/// (`JSONValueEncoder`), short mappings and lists of scalars in flow style (`{mode: zscore}`,
/// `[1, 2]`), numbers as medprep writes JSON numbers, strings quoted only when YAML would read
/// them as something else. `Manifest.parse` reads the text back to the same value.
public enum ManifestYAML {
    /// `header`: comment lines at the top; `comments`: a trailing comment for the line of a key
    /// path ("labels.ordinal", "intensity").
    public static func text(_ manifest: Manifest, header: [String] = [], comments: [String: String] = [:]) throws -> String {
        let json = try JSONValueEncoder().encode(manifest)
        var lines = header.map { "# " + $0 }
        guard case .object(let fields) = json else { return "" }
        block(fields, indent: 0, path: "", comments: comments, into: &lines)
        return lines.joined(separator: "\n") + "\n"
    }

    static let flowWidth = 72

    static func block(_ fields: [(String, JSON)], indent: Int, path: String, comments: [String: String], into lines: inout [String]) {
        let pad = String(repeating: " ", count: indent)
        for (key, value) in fields {
            let here = path.isEmpty ? key : path + "." + key
            let note = comments[here].map { "   # " + $0 } ?? ""
            if let flow = flow(value), flow.count + indent + key.count + 2 <= flowWidth || !isContainer(value) {
                lines.append("\(pad)\(key): \(flow)\(note)")
                continue
            }
            lines.append("\(pad)\(key):\(note)")
            switch value {
            case .object(let inner): block(inner, indent: indent + 2, path: here, comments: comments, into: &lines)
            case .array(let items):
                for item in items {
                    if let f = flow(item), f.count + indent + 4 <= flowWidth || !isContainer(item) {
                        lines.append("\(pad)  - \(f)")
                    } else if case .object(let inner) = item {
                        var sub: [String] = []
                        block(inner, indent: indent + 4, path: here, comments: [:], into: &sub)
                        if let first = sub.first { sub[0] = pad + "  - " + first.dropFirst(indent + 4) }
                        lines += sub
                    }
                }
            default: break
            }
        }
    }

    static func isContainer(_ v: JSON) -> Bool {
        switch v {
        case .object, .array: true
        default: false
        }
    }

    /// One-line form: scalars, and containers of scalars (or of such containers).
    static func flow(_ v: JSON) -> String? {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .number: return v.serialized()
        case .string(let s): return scalar(s)
        case .array(let a):
            let parts = a.map(flow)
            guard parts.allSatisfy({ $0 != nil }) else { return nil }
            return "[" + parts.map { $0! }.joined(separator: ", ") + "]"
        case .object(let o):
            let parts = o.map { k, v in flow(v).map { "\(k): \($0)" } }
            guard parts.allSatisfy({ $0 != nil }) else { return nil }
            return "{" + parts.map { $0! }.joined(separator: ", ") + "}"
        }
    }

    static let reserved: Set<String> = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"]

    /// Plain when YAML reads it back as this string; JSON-quoted (valid YAML) otherwise.
    static func scalar(_ s: String) -> String {
        let plain = !s.isEmpty && !reserved.contains(s.lowercased())
            && s.first!.isLetter && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-/".contains($0)) }
        return plain ? s : JSON.string(s).serialized()
    }
}
