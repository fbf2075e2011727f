import MedprepCore
import MedprepDataset

/// The structure Schemas/shard-index.schema.json gives index.json, checked in Swift (no
/// Python, no schema library): required keys, closed objects, types, enums, patterns and
/// bounds. Every problem is one message naming the JSON path and the value, e.g.
/// `cases[2].fold is '-1', expected an integer >= 0.`
///
/// One deliberate difference: the top-level `part` object that `convert --part i/n` writes
/// into a part's index is accepted (`{"index": i, "count": n}`, 0 <= i < n); the schema
/// describes merged indexes only. And shard file names may be `parts/I-of-N/shard-NNNNN.safetensors`:
/// `medprep merge` lists the parts' shards where they are (the schema's pattern allows only
/// `shard-NNNNN.safetensors`).
public enum IndexSchema {
    public enum Pattern: Sendable {
        case sha256, shardFile, orientation

        package func matches(_ s: String) -> Bool {
            let u = Array(s.utf8)
            switch self {
            case .sha256:
                return u.count == 64 && u.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
            case .shardFile:
                // `medprep merge` lists the parts' shards in place: parts/I-of-N/shard-*.safetensors.
                let components = s.split(separator: "/", omittingEmptySubsequences: false)
                if components.count == 3 {
                    return components[0] == "parts" && OutputLocation.partName(String(components[1])) != nil
                        && Pattern.shardFile.matches(String(components[2]))
                }
                let prefix = Array("shard-".utf8), suffix = Array(".safetensors".utf8)
                guard u.count >= prefix.count + 5 + suffix.count, u.starts(with: prefix), u.suffix(suffix.count).elementsEqual(suffix) else { return false }
                return u[prefix.count..<(u.count - suffix.count)].allSatisfy { (48...57).contains($0) }
            case .orientation:
                return u.count == 3 && u.allSatisfy { "RLAPSI?".utf8.contains($0) }
            }
        }

        package var text: String {
            switch self {
            case .sha256: "64 lower-case hex digits"
            case .shardFile: "a name like 'shard-00000.safetensors' (or 'parts/0-of-2/shard-00000.safetensors' after a merge)"
            case .orientation: "three of R, L, A, P, S, I, ? (like 'RAS')"
            }
        }
    }

    public typealias Extra = @Sendable (JSON, String, inout [String]) -> Void

    public indirect enum Rule: Sendable {
        /// Known properties (checked when present), required ones, closed = no other keys.
        case object(required: [String], properties: [(String, Rule)], closed: Bool, extra: Extra?)
        case anyObject
        case array(Rule, min: Int, max: Int?, unique: Bool)
        case string(min: Int, pattern: Pattern?)
        case constString(String)
        case constInt(Int)
        case oneOf([String])
        case integer(min: Int?, max: Int?)
        /// `orNull`: JSON null too (a statistic of a channel with no finite voxel).
        case number(exclusiveMin: Double?, orNull: Bool = false)
        case numberOrString
        case boolean
    }

    // MARK: - The schema

    package static let sha256 = Rule.string(min: 0, pattern: .sha256)
    package static let count = Rule.integer(min: 0, max: nil)

    package static let classRule = Rule.object(
        required: ["index", "name"],
        properties: [
            ("index", count), ("name", .string(min: 1, pattern: nil)),
            ("source_values", .array(.integer(min: nil, max: nil), min: 1, max: nil, unique: false)),
            ("colours", .array(.array(.integer(min: 0, max: 255), min: 3, max: 3, unique: false), min: 1, max: nil, unique: false)),
            ("ordinal_rank", count),
        ],
        closed: true,
        extra: { v, path, out in
            let has = [v["source_values"] != nil, v["colours"] != nil]
            if has == [false, false] { out.append("\(path) has neither 'source_values' nor 'colours', expected exactly one of them.") }
            if has == [true, true] { out.append("\(path) has both 'source_values' and 'colours', expected exactly one of them.") }
        })

    package static let shardRule = Rule.object(
        required: ["file", "sha256", "bytes", "sample_count", "first_sample"],
        properties: [
            ("file", .string(min: 0, pattern: .shardFile)), ("sha256", sha256), ("bytes", .integer(min: 16, max: nil)),
            ("sample_count", .integer(min: 1, max: nil)), ("first_sample", count),
        ],
        closed: true, extra: nil)

    package static let sourceRule = Rule.object(
        required: ["role", "path", "sha256"],
        properties: [("role", .oneOf(["image", "mask"])), ("channel", count), ("path", .string(min: 1, pattern: nil)), ("sha256", sha256)],
        closed: true, extra: nil)

    package static let caseRule = Rule.object(
        required: ["case_index", "id", "sources", "original_geometry", "slice_axis", "slice_range", "fold"],
        properties: [
            ("case_index", count), ("id", .string(min: 1, pattern: nil)),
            ("sources", .array(sourceRule, min: 1, max: nil, unique: false)),
            ("original_geometry", .object(
                required: ["dims", "spacing", "affine", "orientation"],
                properties: [
                    ("dims", .array(.integer(min: 1, max: nil), min: 1, max: 7, unique: false)),
                    ("spacing", .array(.number(exclusiveMin: 0), min: 1, max: 7, unique: false)),
                    ("affine", .array(.array(.number(exclusiveMin: nil), min: 4, max: 4, unique: false), min: 4, max: 4, unique: false)),
                    ("orientation", .string(min: 0, pattern: .orientation)),
                ],
                closed: true, extra: nil)),
            ("slice_axis", .oneOf(["x", "y", "z"])),
            ("slice_spacing_mm", .array(.number(exclusiveMin: 0), min: 2, max: 2, unique: false)),
            ("slice_step_mm", .number(exclusiveMin: 0)),
            ("slice_range", .object(required: ["first_sample", "count"],
                                    properties: [("first_sample", count), ("count", .integer(min: 1, max: nil))],
                                    closed: true, extra: nil)),
            ("fold", count),
            ("jpeg_ambiguous_pixels", count),
            ("foreground_pixels_cropped", count),
        ],
        closed: true,
        extra: { v, path, out in
            guard let sources = v["sources"]?.arrayValue, !sources.isEmpty else { return }
            if !sources.contains(where: { $0["role"]?.stringValue == "image" }) {
                out.append("\(path).sources has no entry with role 'image', expected at least one.")
            }
        })

    package static let statistic = Rule.number(exclusiveMin: nil, orNull: true)
    package static let number = Rule.number(exclusiveMin: nil, orNull: false)

    package static let normalisationRule = Rule.object(
        required: ["mode", "statistics", "cases"],
        properties: [
            ("mode", .oneOf(["zscore", "zscore-nonzero", "zscore-foreground", "ct", "minmax", "rgb-01", "none"])),
            ("statistics", .string(min: 0, pattern: nil)),
            ("dataset", .array(.object(required: ["channel", "lower", "upper", "mean", "std", "samples"],
                                       properties: [("channel", count), ("lower", number), ("upper", number), ("mean", number),
                                                    ("std", number), ("samples", count)],
                                       closed: true, extra: nil), min: 0, max: nil, unique: false)),
            ("pad_value", .numberOrString),
            ("cases", .array(.object(
                required: ["case_index", "channels"],
                properties: [
                    ("case_index", count),
                    ("channels", .array(.object(required: ["channel"],
                                                properties: [("channel", count), ("min", statistic), ("max", statistic), ("mean", statistic),
                                                             ("std", statistic), ("foreground_only", .boolean), ("nonzero_only", .boolean)],
                                                closed: true, extra: nil), min: 0, max: nil, unique: false)),
                    ("pad_values", .array(number, min: 0, max: nil, unique: false)),
                ],
                closed: true, extra: nil), min: 0, max: nil, unique: false)),
        ],
        closed: true, extra: nil)

    public static let index = Rule.object(
        required: ["format", "format_version", "medprep_version", "manifest_sha256", "dataset", "classes", "ordinal",
                   "parameters", "normalisation", "maps", "shards", "cases", "skipped_cases", "sample_count", "folds"],
        properties: [
            ("format", .constString("medprep-index")),
            ("format_version", .constInt(1)),
            ("medprep_version", .string(min: 1, pattern: nil)),
            ("manifest_sha256", sha256),
            ("dataset", .object(required: ["name"], properties: [("name", .string(min: 1, pattern: nil))], closed: true, extra: nil)),
            ("classes", .array(classRule, min: 1, max: nil, unique: false)),
            ("ordinal", .boolean),
            ("parameters", .anyObject),
            ("normalisation", normalisationRule),
            ("maps", .object(
                required: ["sdf", "rrw", "convention", "units", "scales"],
                properties: [
                    ("convention", .oneOf(["boundary", "plain", "itk"])), ("dtype", .oneOf(["float32", "float16"])),
                    ("rrw", .boolean), ("scales", .array(.integer(min: 1, max: nil), min: 1, max: nil, unique: true)),
                    ("sdf", .boolean), ("storage", .oneOf(["online", "dense", "compact"])), ("units", .oneOf(["px", "mm"])),
                    ("rrw_from_sdf", .boolean),
                ],
                closed: true, extra: nil)),
            ("shards", .array(shardRule, min: 0, max: nil, unique: false)),
            ("cases", .array(caseRule, min: 0, max: nil, unique: false)),
            ("skipped_cases", .array(.object(required: ["id", "reason"],
                                             properties: [("id", .string(min: 1, pattern: nil)), ("reason", .string(min: 1, pattern: nil))],
                                             closed: true, extra: nil), min: 0, max: nil, unique: false)),
            ("sample_count", count),
            ("folds", .object(required: ["k", "seed"], properties: [("k", .integer(min: 1, max: nil)), ("seed", count)],
                              closed: true, extra: nil)),
            ("part", .object(required: ["index", "count"], properties: [("index", count), ("count", .integer(min: 1, max: nil))],
                             closed: true,
                             extra: { v, path, out in
                                 if let i = v["index"]?.safeInt, let n = v["count"]?.safeInt, i >= n {
                                     out.append("\(path).index is '\(i)', expected below \(path).count '\(n)'.")
                                 }
                             })),
        ],
        closed: true, extra: nil)

    // MARK: - Checking

    /// Problems with `json` as an index (empty when it has the schema's structure).
    public static func check(_ json: JSON) -> [String] {
        var out: [String] = []
        check(json, index, path: "", into: &out)
        return out
    }

    public static func check(_ v: JSON, _ rule: Rule, path: String, into out: inout [String]) {
        let name = path.isEmpty ? "the index" : path
        func expected(_ what: String) { out.append("\(name) is \(show(v)), expected \(what).") }
        switch rule {
        case .object(let required, let properties, let closed, let extra):
            guard case .object(let members) = v else { return expected("an object") }
            for key in required where !members.contains(where: { $0.0 == key }) {
                out.append("\(name) has no '\(key)'.")
            }
            for (key, value) in members {
                let sub = path.isEmpty ? key : "\(path).\(key)"
                if let r = properties.first(where: { $0.0 == key })?.1 {
                    check(value, r, path: sub, into: &out)
                } else if closed {
                    out.append("\(name) has the unknown key '\(key)'.")
                }
            }
            extra?(v, name, &out)
        case .anyObject:
            guard case .object = v else { return expected("an object") }
        case .array(let item, let min, let max, let unique):
            guard case .array(let items) = v else { return expected("an array") }
            if items.count < min { out.append("\(name) has \(items.count) items, expected at least \(min).") }
            if let max, items.count > max { out.append("\(name) has \(items.count) items, expected at most \(max).") }
            if unique {
                var seen = Set<String>()
                for x in items where !seen.insert(x.serialized()).inserted {
                    out.append("\(name) holds '\(x.serialized())' more than once, expected unique items.")
                    break
                }
            }
            for (i, x) in items.enumerated() { check(x, item, path: "\(path)[\(i)]", into: &out) }
        case .string(let min, let pattern):
            guard case .string(let s) = v else { return expected(pattern?.text ?? "a string") }
            if s.count < min { out.append("\(name) is empty, expected a non-empty string.") }
            if let pattern, !pattern.matches(s) { expected(pattern.text) }
        case .constString(let c):
            guard v.stringValue == c else { return expected("'\(c)'") }
        case .constInt(let c):
            guard integer(v) == c else { return expected("'\(c)'") }
        case .oneOf(let options):
            guard let s = v.stringValue, options.contains(s) else {
                return expected("one of \(options.map { "'\($0)'" }.joined(separator: ", "))")
            }
        case .integer(let min, let max):
            let what: String
            switch (min, max) {
            case (let lo?, let hi?): what = "an integer \(lo)...\(hi)"
            case (let lo?, nil): what = "an integer >= \(lo)"
            case (nil, let hi?): what = "an integer <= \(hi)"
            default: what = "an integer"
            }
            guard let i = integer(v) else { return expected(what) }
            if let min, i < min { return expected(what) }
            if let max, i > max { return expected(what) }
        case .number(let exclusiveMin, let orNull):
            if orNull && v == .null { return }
            let what = (exclusiveMin.map { "a number > \(JSON.format($0))" } ?? "a number") + (orNull ? " or null" : "")
            guard let d = v.doubleValue, v.boolValue == nil else { return expected(what) }
            if let lo = exclusiveMin, !(d > lo) { expected(what) }
        case .numberOrString:
            guard v.doubleValue != nil || v.stringValue != nil else { return expected("a number or a string") }
        case .boolean:
            guard v.boolValue != nil else { return expected("true or false") }
        }
    }

    /// JSON Schema's integer: any number with no fraction (1.0 counts).
    package static func integer(_ v: JSON) -> Int? { v.intValue }

    /// `'value'` for scalars, the kind for containers.
    package static func show(_ v: JSON) -> String {
        switch v {
        case .object, .array: return kind(v)
        case .null: return "null"
        case .string(let s):
            let t = s.count > 80 ? String(s.prefix(77)) + "..." : s
            return "'\(t)' (a string)"
        default: return "'\(v.serialized())'"
        }
    }

    package static func kind(_ v: JSON) -> String { v.kind }
}
