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

/// A lenient, typed view of index.json: every field is optional so that a damaged index can
/// still be cross-checked as far as it goes (`IndexSchema` reports what is wrong with it).
public struct OutputIndex: Sendable {
    public struct Shard: Sendable, Equatable {
        public var file: String?
        public var sha256: String?
        public var bytes: Int?
        public var sampleCount: Int?
        public var firstSample: Int?
    }

    public struct Case: Sendable, Equatable {
        public var caseIndex: Int?
        public var id: String?
        public var sliceAxis: String?
        public var firstSample: Int?
        public var count: Int?
        public var fold: Int?
        public var dims: [Int]?
        public var spacing: [Double]?
        public var orientation: String?
        /// `slice_spacing_mm`: [row, column] mm of the shard slices (nil in older indexes).
        public var sliceSpacing: [Double]? = nil
    }

    public struct Class: Sendable, Equatable {
        public var index: Int?
        public var name: String?
    }

    public let json: JSON
    public var format: String? { json["format"]?.stringValue }
    public var medprepVersion: String? { json["medprep_version"]?.stringValue }
    public var datasetName: String? { json["dataset"]?["name"]?.stringValue }
    public var ordinal: Bool? { json["ordinal"]?.boolValue }
    public var sampleCount: Int? { json["sample_count"]?.safeInt }
    public var foldsK: Int? { json["folds"]?["k"]?.safeInt }
    public var foldsSeed: Int? { json["folds"]?["seed"]?.safeInt }
    public var mapsSDF: Bool? { json["maps"]?["sdf"]?.boolValue }
    public var mapsRRW: Bool? { json["maps"]?["rrw"]?.boolValue }
    public var mapsScales: [Int]? { json["maps"]?["scales"]?.arrayValue.flatMap { a in
        let v = a.compactMap(\.safeInt); return v.count == a.count ? v : nil } }
    public var mapsConvention: String? { json["maps"]?["convention"]?.stringValue }
    /// `online`, `dense` or `compact`; an index written before storage modes is dense.
    public var mapsStorage: String { json["maps"]?["storage"]?.stringValue ?? "dense" }
    public var mapsDType: String { json["maps"]?["dtype"]?.stringValue ?? "float32" }
    public var mapsRRWFromSDF: Bool { json["maps"]?["rrw_from_sdf"]?.boolValue ?? false }
    /// Whether the shards must hold sdf / rrw tensors (nil when the index does not say).
    public var storedSDF: Bool? { mapsSDF.map { $0 && mapsStorage != "online" } }
    public var storedRRW: Bool? { mapsRRW.map { $0 && mapsStorage != "online" && !mapsRRWFromSDF } }
    public var mapsUnits: String? { json["maps"]?["units"]?.stringValue }
    public var normalisationMode: String? { json["normalisation"]?["mode"]?.stringValue }
    public var normalisationStatistics: String? { json["normalisation"]?["statistics"]?.stringValue }
    /// `part` written by `convert --part i/n` (not in the merged index).
    public var part: (index: Int, count: Int)? {
        guard let p = json["part"], let i = p["index"]?.safeInt, let n = p["count"]?.safeInt else { return nil }
        return (i, n)
    }
    /// `parameters.dtypes.image` / `.label`, `parameters.geometry.size` ([H, W]).
    public var imageDType: String? { json["parameters"]?["dtypes"]?["image"]?.stringValue }
    public var labelDType: String? { json["parameters"]?["dtypes"]?["label"]?.stringValue }
    public var sliceSize: [Int]? {
        guard let a = json["parameters"]?["geometry"]?["size"]?.arrayValue, a.count == 2 else { return nil }
        let v = a.compactMap(\.safeInt)
        return v.count == 2 ? v : nil
    }

    public var classes: [Class] {
        (json["classes"]?.arrayValue ?? []).map { Class(index: $0["index"]?.safeInt, name: $0["name"]?.stringValue) }
    }

    public var shards: [Shard] {
        (json["shards"]?.arrayValue ?? []).map {
            Shard(file: $0["file"]?.stringValue, sha256: $0["sha256"]?.stringValue, bytes: $0["bytes"]?.safeInt,
                  sampleCount: $0["sample_count"]?.safeInt, firstSample: $0["first_sample"]?.safeInt)
        }
    }

    public var cases: [Case] {
        (json["cases"]?.arrayValue ?? []).map { c in
            let g = c["original_geometry"]
            return Case(caseIndex: c["case_index"]?.safeInt, id: c["id"]?.stringValue, sliceAxis: c["slice_axis"]?.stringValue,
                        firstSample: c["slice_range"]?["first_sample"]?.safeInt, count: c["slice_range"]?["count"]?.safeInt,
                        fold: c["fold"]?.safeInt,
                        dims: g?["dims"]?.arrayValue?.compactMap(\.safeInt),
                        spacing: g?["spacing"]?.arrayValue?.compactMap(\.doubleValue),
                        orientation: g?["orientation"]?.stringValue,
                        sliceSpacing: (c["slice_spacing_mm"]?.arrayValue?.compactMap(\.doubleValue)).flatMap { $0.count == 2 ? $0 : nil })
        }
    }

    /// `skipped_cases`: (id, reason).
    public var skippedCases: [(id: String, reason: String)] {
        (json["skipped_cases"]?.arrayValue ?? []).map { ($0["id"]?.stringValue ?? "?", $0["reason"]?.stringValue ?? "") }
    }

    /// Keys that appear twice in one object (a parse keeps the last); `verify` reports them.
    public var duplicateKeys: [String] = []

    public init(json: JSON) { self.json = json }

    /// Reads and parses index.json strictly (`StrictJSON`). Errors name the file.
    public static func read(path: String) throws -> OutputIndex {
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
        var index = OutputIndex(json: parsed.value)
        index.duplicateKeys = parsed.duplicateKeys
        return index
    }
}

package extension JSON {
    /// An integer value (1.0 counts) that fits in Int; nil otherwise. Unlike `intValue` this
    /// never traps on huge numbers from an edited file.
    public var safeInt: Int? { IndexSchema.integer(self) }
}
