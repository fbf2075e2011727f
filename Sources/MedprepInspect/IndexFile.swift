import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// Where a `medprep convert` output lives: OUT may be the folder or its index.json.
public struct OutputLocation: Sendable, Equatable {
    /// The folder holding index.json and the shards.
    public var directory: String
    public var indexPath: String { directory + "/index.json" }

    public init(_ path: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        if p.hasSuffix("/index.json") {
            p = String(p.dropLast("/index.json".count))
        } else if p == "index.json" {
            p = "."
        }
        directory = p.isEmpty ? "/" : p
    }

    /// Part folders (`parts/I-of-N/`) that hold an index.json, ordered by N then I.
    public var partDirectories: [String] {
        let root = directory + "/parts"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { FileIO.exists(root + "/" + $0 + "/index.json") }
            .sorted { a, b in
                let pa = OutputLocation.partName(a), pb = OutputLocation.partName(b)
                if let pa, let pb { return (pa.count, pa.index) < (pb.count, pb.index) }
                if (pa == nil) != (pb == nil) { return pa != nil }
                return a.utf8.lexicographicallyPrecedes(b.utf8)
            }
            .map { root + "/" + $0 }
    }

    /// `I-of-N` → (I, N).
    public static func partName(_ name: String) -> (index: Int, count: Int)? {
        let p = name.components(separatedBy: "-of-")
        guard p.count == 2, let i = Int(p[0]), let n = Int(p[1]), n >= 1, i >= 0, i < n,
              String(i) == p[0], String(n) == p[1] else { return nil }
        return (i, n)
    }
}

/// Reading index.json: strict JSON (exact integers, bounded nesting, duplicate keys found), the
/// structure of Schemas/shard-index.schema.json (`IndexSchema`), then the typed `ShardIndex`.
public enum IndexFile {
    public struct Parsed: Sendable {
        public var json: JSON
        /// Keys that appear twice in one object (a parse keeps the last); `verify` reports them.
        public var duplicateKeys: [String]
    }

    /// Reads and parses index.json strictly. Errors name the file.
    public static func parse(path: String) throws -> Parsed {
        let bytes = try FileIO.readAll(path, limit: 1 << 31)
        let parsed: (value: JSON, duplicateKeys: [String])
        do {
            parsed = try StrictJSON.parse(bytes)
        } catch let e as StrictJSON.ParseError {
            throw MedprepError(.badHeader, path: path, "is not valid JSON (\(bytes.count) bytes): \(e.description).")
        }
        guard case .object = parsed.value else {
            throw MedprepError(.badHeader, path: path, "holds \(IndexSchema.kind(parsed.value)), expected a JSON object.")
        }
        return Parsed(json: parsed.value, duplicateKeys: parsed.duplicateKeys)
    }

    /// The typed index, for inspect, preview, merge and resume: an index that does not have the
    /// schema's structure is an error naming its first problems (`medprep verify` lists them all).
    public static func read(path: String) throws -> ShardIndex {
        let parsed = try parse(path: path)
        var problems = parsed.duplicateKeys.map { "the key '\($0)' appears twice." }
        problems += IndexSchema.check(parsed.json)
        guard problems.isEmpty else {
            let shown = problems.prefix(3).joined(separator: " ")
            throw MedprepError(.badHeader, path: path,
                               "is not a valid medprep index (\(problems.count) problem\(problems.count == 1 ? "" : "s")): \(shown)\(problems.count > 3 ? " ..." : "") (medprep verify lists them all).")
        }
        do {
            return try ShardIndex(json: parsed.json)
        } catch {
            throw MedprepError(.badHeader, path: path, "does not decode as an index: \(error).")
        }
    }
}

package extension JSON {
    /// An integer value (1.0 counts) that fits in Int; nil otherwise. Unlike `intValue` this
    /// never traps on huge numbers from an edited file.
    var safeInt: Int? { IndexSchema.integer(self) }
}
