import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// `medprep inspect OUT`: what a convert output holds. Counts come from the index; pixel shares
/// and per-slice class presence from the shards' `label` and `class_presence` tensors (read
/// tensor by tensor, never a whole shard).
public struct OutputStatistics: Sendable {
    public struct ClassStat: Sendable, Equatable {
        public var index: Int
        public var name: String
        /// Label pixels of this class over all samples, and their share of all label pixels.
        public var pixels: Int
        public var share: Double
        /// Samples (slices) where the class is present.
        public var slices: Int
        /// Cases with the class in at least one slice.
        public var cases: Int
    }

    public struct CaseStat: Sendable, Equatable {
        public var caseIndex: Int
        public var id: String
        public var slices: Int
        public var firstSample: Int
        public var fold: Int?
        public var sliceAxis: String?
        public var dims: [Int]?
        public var spacing: [Double]?
        public var orientation: String?
        /// Per class, the slices of this case where it is present.
        public var classSlices: [Int]
    }

    public struct FoldStat: Sendable, Equatable {
        public var fold: Int
        public var cases: Int
        public var slices: Int
    }

    public struct ShardStat: Sendable, Equatable {
        public var file: String
        public var bytes: Int
        public var samples: Int
    }

    public var output: String
    public var dataset: String?
    public var medprepVersion: String?
    public var sampleCount: Int
    /// Sample geometry from the first shard: C × H × W and the dtypes.
    public var channels = 0, height = 0, width = 0
    public var imageDType = "", labelDType = ""
    public var ordinal: Bool?
    public var classes: [ClassStat] = []
    public var cases: [CaseStat] = []
    public var skipped: [(id: String, reason: String)] = []
    public var foldsK: Int?
    public var foldsSeed: Int?
    public var folds: [FoldStat] = []
    public var shards: [ShardStat] = []
    public var mapsSDF = false, mapsRRW = false, mapsStorage = "dense"
    public var mapScales: [Int] = []
    public var mapConvention: String?, mapUnits: String?
    public var normalisationMode: String?
    public var normalisationStatistics: String?
    /// The index's `part` (a part folder not yet merged).
    public var part: (index: Int, count: Int)?

    public var totalBytes: Int { shards.reduce(0) { $0 + $1.bytes } }

    /// Reads OUT's index and shards. Throws a `MedprepError` naming the file when something cannot
    /// be read (`medprep verify` says what exactly is wrong).
    public static func compute(_ out: String, onShard: ((Int, Int) -> Void)? = nil) throws -> OutputStatistics {
        let loc = OutputLocation(out)
        guard FileIO.exists(loc.indexPath) else {
            let parts = loc.partDirectories
            if !parts.isEmpty {
                throw MedprepError(.fileNotFound, path: loc.indexPath,
                                   "not found, but \(parts.count == 1 ? "1 part output is" : "\(parts.count) part outputs are"): run 'medprep merge \(loc.directory)' first, or inspect one part ('\(parts[0])').")
            }
            throw MedprepError(.fileNotFound, path: loc.indexPath, "not found: '\(loc.directory)' is not a medprep convert output.")
        }
        let index = try IndexFile.read(path: loc.indexPath)
        var s = OutputStatistics(output: loc.directory, sampleCount: index.sampleCount)
        s.dataset = index.dataset.name
        s.medprepVersion = index.medprepVersion
        s.ordinal = index.ordinal
        s.foldsK = index.folds.k
        s.foldsSeed = index.folds.seed
        s.mapsSDF = index.maps.sdf
        s.mapsRRW = index.maps.rrw
        s.mapsStorage = index.maps.effectiveStorage.rawValue
        s.mapScales = index.maps.scales
        s.mapConvention = index.maps.convention.rawValue
        s.mapUnits = index.maps.units.rawValue
        s.normalisationMode = index.normalisation.mode.rawValue
        s.normalisationStatistics = index.normalisation.statistics
        s.part = index.part.map { ($0.index, $0.count) }
        s.skipped = index.skippedCases.map { ($0.id, $0.reason) }

        let classList = index.classes
        let k = classList.count
        guard k >= 1 else { throw MedprepError(.mismatch, path: loc.indexPath, "lists no classes.") }
        let caseList = index.cases
        var position: [Int: Int] = [:]
        for (i, c) in caseList.enumerated() {
            let ci = c.caseIndex
            position[ci] = position[ci] ?? i
            s.cases.append(CaseStat(caseIndex: ci, id: c.id, slices: c.sliceRange.count, firstSample: c.sliceRange.firstSample,
                                    fold: c.fold, sliceAxis: c.sliceAxis.rawValue, dims: c.originalGeometry.dims,
                                    spacing: c.originalGeometry.spacing, orientation: c.originalGeometry.orientation,
                                    classSlices: [Int](repeating: 0, count: k)))
        }

        var pixels = [Int](repeating: 0, count: k + 1)
        var slices = [Int](repeating: 0, count: k)
        let shardList = index.shards
        for (n, entry) in shardList.enumerated() {
            let file = entry.file  // a shard name of the folder: the schema's pattern
            let reader = try ShardTensorReader(path: loc.directory + "/" + file)
            let label = try reader.info("label")
            let image = try reader.info("image")
            guard image.shape.count == 4, label.shape.count == 3 else {
                throw MedprepError(.mismatch, path: reader.path, "tensor 'image' has shape \(image.shape) and 'label' \(label.shape), expected [N, C, H, W] and [N, H, W].")
            }
            if n == 0 {
                (s.channels, s.height, s.width) = (image.shape[1], image.shape[2], image.shape[3])
                s.imageDType = image.dtype.rawValue
                s.labelDType = label.dtype.rawValue
            }
            let rows = label.shape[0]
            let h = try reader.labelHistogram(classCount: k)
            for c in 0...k { pixels[c] += h[c] }
            let presence = try reader.ints("class_presence")
            let caseIndex = try reader.ints("case_index")
            guard presence.count == rows * k, caseIndex.count == rows else {
                throw MedprepError(.mismatch, path: reader.path, "tensor 'class_presence' has \(presence.count) values and 'case_index' \(caseIndex.count), expected \(rows) x \(k) and \(rows).")
            }
            for r in 0..<rows {
                let p = position[caseIndex[r]]
                for c in 0..<k where presence[r * k + c] != 0 {
                    slices[c] += 1
                    if let p { s.cases[p].classSlices[c] += 1 }
                }
            }
            s.shards.append(ShardStat(file: file, bytes: reader.header.fileSize, samples: rows))
            onShard?(n + 1, shardList.count)
        }
        let total = max(1, pixels.reduce(0, +))
        for (i, c) in classList.enumerated() {
            s.classes.append(ClassStat(index: i, name: c.name, pixels: pixels[i], share: Double(pixels[i]) / Double(total),
                                       slices: slices[i], cases: s.cases.filter { $0.classSlices[i] > 0 }.count))
        }
        if let kf = s.foldsK, kf >= 1, kf <= 10_000 {
            s.folds = (0..<kf).map { f in
                let cs = s.cases.filter { $0.fold == f }
                return FoldStat(fold: f, cases: cs.count, slices: cs.reduce(0) { $0 &+ $1.slices })
            }
        }
        return s
    }

    // MARK: - Output

    public var json: JSON {
        var o: [(String, JSON)] = [
            ("output", .string(output)),
            ("dataset", dataset.map(JSON.string) ?? .null),
            ("medprep_version", medprepVersion.map(JSON.string) ?? .null),
        ]
        if let part { o.append(("part", .object([("index", .int(part.index)), ("count", .int(part.count))]))) }
        o += [
            ("sample_count", .int(sampleCount)),
            ("sample_shape", .object([("channels", .int(channels)), ("height", .int(height)), ("width", .int(width)),
                                      ("image_dtype", .string(imageDType)), ("label_dtype", .string(labelDType))])),
            ("ordinal", ordinal.map(JSON.bool) ?? .null),
            ("classes", .array(classes.map { c in
                .object([("index", .int(c.index)), ("name", .string(c.name)), ("pixels", .int(c.pixels)),
                         ("share", .number(c.share)), ("slices", .int(c.slices)), ("cases", .int(c.cases))])
            })),
            ("cases", .array(cases.map { c in
                var e: [(String, JSON)] = [("case_index", .int(c.caseIndex)), ("id", .string(c.id)), ("slices", .int(c.slices)),
                                           ("first_sample", .int(c.firstSample)), ("fold", c.fold.map(JSON.int) ?? .null),
                                           ("slice_axis", c.sliceAxis.map(JSON.string) ?? .null)]
                if let d = c.dims { e.append(("original_dims", .ints(d))) }
                if let sp = c.spacing { e.append(("original_spacing", .numbers(sp))) }
                if let or = c.orientation { e.append(("original_orientation", .string(or))) }
                e.append(("class_slices", .ints(c.classSlices)))
                return .object(e)
            })),
            ("skipped_cases", .array(skipped.map { .object([("id", .string($0.id)), ("reason", .string($0.reason))]) })),
            ("folds", .object([("k", foldsK.map(JSON.int) ?? .null), ("seed", foldsSeed.map(JSON.int) ?? .null),
                               ("folds", .array(folds.map { .object([("fold", .int($0.fold)), ("cases", .int($0.cases)), ("slices", .int($0.slices))]) }))])),
            ("shards", .object([("count", .int(shards.count)), ("bytes", .int(totalBytes)),
                                ("min_bytes", .int(shards.map(\.bytes).min() ?? 0)), ("max_bytes", .int(shards.map(\.bytes).max() ?? 0)),
                                ("files", .array(shards.map { .object([("file", .string($0.file)), ("bytes", .int($0.bytes)), ("samples", .int($0.samples))]) }))])),
            ("maps", .object([("sdf", .bool(mapsSDF)), ("rrw", .bool(mapsRRW)), ("storage", .string(mapsStorage)), ("scales", .ints(mapScales)),
                              ("convention", mapConvention.map(JSON.string) ?? .null), ("units", mapUnits.map(JSON.string) ?? .null)])),
            ("normalisation", .object([("mode", normalisationMode.map(JSON.string) ?? .null),
                                       ("statistics", normalisationStatistics.map(JSON.string) ?? .null)])),
        ]
        return .object(o)
    }

    /// The human summary. At most `maxCaseRows` case rows (the JSON lists all).
    public func text(maxCaseRows: Int = 40) -> String {
        var lines: [String] = []
        let title = dataset.map { "'\($0)'" } ?? "output"
        lines.append("\(title) in \(output) (medprep \(medprepVersion ?? "?"))" + (part.map { ", part \($0.index) of \($0.count) (not merged)" } ?? ""))
        let perShard = shards.map(\.samples)
        lines.append("  samples        \(sampleCount) slices of \(channels) x \(height) x \(width) (C x H x W), image \(imageDType), label \(labelDType)")
        lines.append("  cases          \(cases.count) converted, \(skipped.count) skipped")
        let sizes = shards.isEmpty ? "" : " (\(mib(shards.map(\.bytes).min()!))-\(mib(shards.map(\.bytes).max()!)) MiB each)"
        let perShardText = perShard.isEmpty ? "" : ", \(perShard.max()!) samples per shard" + (perShard.last! != perShard.max()! ? " (last \(perShard.last!))" : "")
        lines.append("  shards         \(shards.count) file\(shards.count == 1 ? "" : "s"), \(mib(totalBytes)) MiB\(sizes)\(perShardText)")
        var maps: [String] = []
        if mapsSDF { maps.append("sdf") }
        if mapsRRW { maps.append("rrw") }
        lines.append("  maps           " + (maps.isEmpty ? "none" : "\(maps.joined(separator: ", ")) at scale\(mapScales.count == 1 ? "" : "s") \(mapScales.map(String.init).joined(separator: ", ")); convention \(mapConvention ?? "?"), units \(mapUnits ?? "?"); storage \(mapsStorage)"))
        lines.append("  normalisation  \(normalisationMode ?? "?")" + (normalisationStatistics.map { " (\($0))" } ?? ""))
        lines.append("")
        lines.append("classes (\(classes.count)\(ordinal == true ? ", ordinal" : ""))")
        var t = [["index", "name", "pixel share", "pixels", "slices", "cases"]]
        for c in classes {
            t.append([String(c.index), c.name, percent(c.share), String(c.pixels), String(c.slices), String(c.cases)])
        }
        lines += table(t, right: [0, 2, 3, 4, 5])
        lines.append("")
        lines.append("folds (k = \(foldsK.map(String.init) ?? "?"), seed \(foldsSeed.map(String.init) ?? "?"))")
        t = [["fold", "cases", "slices"]]
        for f in folds { t.append([String(f.fold), String(f.cases), String(f.slices)]) }
        lines += table(t, right: [0, 1, 2])
        lines.append("")
        lines.append("cases")
        t = [["index", "id", "slices", "samples", "fold", "axis", "original"] + classes.dropFirst().map { "\($0.name) slices" }]
        for c in cases.prefix(maxCaseRows) {
            let orig = (c.dims.map { $0.map(String.init).joined(separator: "x") } ?? "?") + (c.orientation.map { " " + $0 } ?? "")
            t.append([String(c.caseIndex), c.id, String(c.slices), "\(c.firstSample)..<\(c.firstSample &+ c.slices)",
                      c.fold.map(String.init) ?? "?", c.sliceAxis ?? "?", orig] + c.classSlices.dropFirst().map(String.init))
        }
        lines += table(t, right: [0, 2, 4] + Array(7..<(7 + max(0, classes.count - 1))))
        if cases.count > maxCaseRows { lines.append("  ... and \(cases.count - maxCaseRows) more cases (--json lists all)") }
        if !skipped.isEmpty {
            lines.append("")
            lines.append("skipped cases")
            for s in skipped { lines.append("  \(s.id): \(s.reason)") }
        }
        return lines.joined(separator: "\n")
    }

    package func mib(_ bytes: Int) -> String {
        let m = Double(bytes) / 1_048_576
        if m >= 100 { return String(Int(m.rounded())) }
        if m >= 1 { return String(Double(Int((m * 10).rounded())) / 10) }
        return String(Double(Int((m * 100).rounded())) / 100)
    }

    package func percent(_ x: Double) -> String {
        let p = x * 100
        if p > 0 && p < 0.01 { return "<0.01%" }
        let r = (p * 100).rounded() / 100
        let whole = Int(r), frac = Int(((r - Double(whole)) * 100).rounded())
        return "\(whole).\(frac < 10 ? "0" : "")\(frac)%"
    }

    /// Columns padded to their widest cell, two spaces apart, indented two.
    package func table(_ rows: [[String]], right: [Int]) -> [String] {
        guard let cols = rows.map(\.count).max() else { return [] }
        var width = [Int](repeating: 0, count: cols)
        for r in rows { for (i, c) in r.enumerated() { width[i] = max(width[i], c.count) } }
        return rows.map { r in
            var line = " "
            for (i, c) in r.enumerated() {
                let pad = String(repeating: " ", count: width[i] - c.count)
                line += " " + (right.contains(i) ? pad + c : c + (i == r.count - 1 ? "" : pad))
            }
            return line
        }
    }
}
