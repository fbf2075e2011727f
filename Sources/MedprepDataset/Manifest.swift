import Foundation
import MedprepCore
import MedprepIO
import MedprepProcessing
import Yams

/// A dataset manifest (YAML; JSON is accepted since JSON is YAML). Schema: Schemas/manifest.schema.json.
/// Unknown keys are errors (a typo must not silently fall back to a default).
public struct Manifest: Codable, Sendable, Equatable {
    public var name: String
    /// How cases are found. `nil`: nnU-Net when the dataset folder has dataset.json.
    public var layout: Layout?
    public var cases: CaseSpec?
    public var labels: LabelSpec?
    public var geometry: GeometrySpec
    public var intensity: IntensitySpec
    public var maps: MapsSpec
    public var folds: FoldSpec
    public var shardSize: Int
    public var dtypes: DTypeSpec

    public enum Layout: String, Codable, Sendable, CaseIterable { case nnunet, templates }

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case name, layout, cases, labels, geometry, intensity, maps, folds
        case shardSize = "shard_size", dtypes
    }

    public init(name: String, layout: Layout? = nil, cases: CaseSpec? = nil, labels: LabelSpec? = nil,
                geometry: GeometrySpec = .init(), intensity: IntensitySpec = .init(), maps: MapsSpec = .init(),
                folds: FoldSpec = .init(), shardSize: Int = 64, dtypes: DTypeSpec = .init()) {
        self.name = name; self.layout = layout; self.cases = cases; self.labels = labels
        self.geometry = geometry; self.intensity = intensity; self.maps = maps; self.folds = folds
        self.shardSize = shardSize; self.dtypes = dtypes
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        layout = try c.decodeChoice(Layout.self, forKey: .layout)
        cases = try c.decodeIfPresent(CaseSpec.self, forKey: .cases)
        labels = try c.decodeIfPresent(LabelSpec.self, forKey: .labels)
        geometry = try c.decodeIfPresent(GeometrySpec.self, forKey: .geometry) ?? .init()
        intensity = try c.decodeIfPresent(IntensitySpec.self, forKey: .intensity) ?? .init()
        maps = try c.decodeIfPresent(MapsSpec.self, forKey: .maps) ?? .init()
        folds = try c.decodeIfPresent(FoldSpec.self, forKey: .folds) ?? .init()
        shardSize = try c.decodeIfPresent(Int.self, forKey: .shardSize) ?? 64
        dtypes = try c.decodeIfPresent(DTypeSpec.self, forKey: .dtypes) ?? .init()
        guard shardSize >= 1 else { throw invalid(c, .shardSize, "must be at least 1, got '\(shardSize)'") }
    }

    /// Parses manifest text; errors name the file and the key path with the expected form.
    public static func parse(_ text: String, path: String) throws -> Manifest {
        // Yams builds its node tree recursively: a few thousand nested collections overflow the
        // 8 MiB main stack (found with `name: [[[[...`). The nesting is bounded from the text and
        // the parse runs on a thread whose stack holds that depth.
        let depth = nestingBound(text)
        guard depth <= maxNesting else {
            throw MedprepError(.invalidArgument, path: path,
                               "is nested too deeply or has too long a line to be a manifest (its longest line plus its '[' and '{' come to \(depth), at most \(maxNesting)).")
        }
        return try withStack(bytes: (32 << 20) + depth * (16 << 10)) { try decode(text, path: path) }
    }

    private static func decode(_ text: String, path: String) throws -> Manifest {
        // Text that is not YAML at all is reported by the decoder below.
        if let root = try? Yams.compose(yaml: text) { try refuseBaseSixty(root, path: path) }
        do {
            return try YAMLDecoder().decode(Manifest.self, from: text)
        } catch DecodingError.dataCorrupted(let ctx) where ctx.underlyingError is ManifestKeyError {
            throw MedprepError(.invalidArgument, path: path, (ctx.underlyingError as! ManifestKeyError).message)
        } catch DecodingError.dataCorrupted(let ctx) where ctx.underlyingError is DecodingError {
            throw MedprepError(.invalidArgument, path: path, describe(ctx.underlyingError as! DecodingError))
        } catch let e as DecodingError {
            throw MedprepError(.invalidArgument, path: path, describe(e))
        } catch let e as ManifestKeyError {
            throw MedprepError(.invalidArgument, path: path, e.message)
        } catch {
            throw MedprepError(.invalidArgument, path: path, "is not valid YAML or JSON: \(error)")
        }
    }

    /// Yams decodes any plain scalar that holds a colon into an integer as a YAML 1.1 base-60
    /// number (`1:30` is 90): it drops the `_`, splits at the colons, keeps the parts that read
    /// as numbers and multiplies them with trapping arithmetic, so `seed: 1:1:1:1:1:1:1:1:1:1:1:1`
    /// or a colon between non-digits and a long number kills the process (both found by
    /// fuzzing), and `k: x:5` would silently read as 5. Every plain scalar with a colon and a
    /// part that reads as a number is refused before anything is decoded (whatever the field:
    /// the composed tree has no types yet); text such as `C:/data` has no such part, and a value
    /// that is text can be quoted.
    static func refuseBaseSixty(_ node: Node, path: String) throws {
        switch node {
        case .scalar(let s):
            guard s.style == .plain || s.style == .any, readsAsBaseSixty(s.string) else { return }
            let at = s.mark.map { " (line \($0.line), column \($0.column))" } ?? ""
            let shown = s.string.count > 40 ? String(s.string.prefix(37)) + "..." : s.string
            throw MedprepError(.invalidArgument, path: path,
                               "value '\(shown)'\(at) is a YAML 1.1 base-60 number; medprep reads numbers in decimal only (quote the value if it is text).")
        case .mapping(let m):
            for (k, v) in m { try refuseBaseSixty(k, path: path); try refuseBaseSixty(v, path: path) }
        case .sequence(let q):
            for v in q { try refuseBaseSixty(v, path: path) }
        default:
            return
        }
    }

    /// Whether Yams would read `text` as base 60 where a number is expected: it holds a colon
    /// and, with `_` removed, one of its colon-separated parts reads as a number (what Yams's
    /// `sexagesimal()` keeps; `Double` accepts every integer spelling `Int(_:radix:)` does).
    static func readsAsBaseSixty(_ text: String) -> Bool {
        guard text.utf8.contains(UInt8(ascii: ":")) else { return false }
        return text.replacingOccurrences(of: "_", with: "")
            .split(separator: ":", omittingEmptySubsequences: true)
            .contains { Double(String($0)) != nil }
    }

    /// Largest nesting bound `parse` accepts (a real manifest's is its longest line, about 100).
    static let maxNesting = 16_384
    /// Largest manifest file read (a real one is a few KB).
    static let maxBytes = 4 << 20

    /// An upper bound on how deeply `text` can nest YAML collections, whatever its quoting: a
    /// block collection nested in another starts at a greater column (so block depth is below
    /// the longest line's length), and each flow collection opens with '[' or '{'.
    static func nestingBound(_ text: String) -> Int {
        var openers = 0, longest = 0, line = 0
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "\n"): longest = max(longest, line); line = 0
            case UInt8(ascii: "["), UInt8(ascii: "{"): openers += 1; line += 1
            default: line += 1
            }
        }
        return openers + max(longest, line)
    }

    public static func load(path: String) throws -> Manifest {
        let bytes = try FileIO.readAll(path, limit: maxBytes)
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// The manifest with defaults filled in, as canonical JSON (sorted keys): recorded in the
    /// index, and its sha256 identifies the parameters of a run.
    public var canonicalJSON: JSON {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self), let json = try? JSON.parse(String(decoding: data, as: UTF8.self)) else { return .null }
        return json
    }

    public var sha256: String { SHA256.hex(Array(canonicalJSON.serialized().utf8)) }

    package static func describe(_ e: DecodingError) -> String {
        func keyPath(_ path: [CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch e {
        case .keyNotFound(let key, let ctx):
            let at = keyPath(ctx.codingPath + [key])
            return "manifest key '\(at)' is required."
        case .typeMismatch(let type, let ctx):
            return "manifest key '\(keyPath(ctx.codingPath))' has the wrong form: expected \(friendly(type)). \(ctx.debugDescription)"
        case .valueNotFound(let type, let ctx):
            return "manifest key '\(keyPath(ctx.codingPath))' is empty: expected \(friendly(type))."
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "is not a valid manifest: \(ctx.debugDescription)"
                : "manifest key '\(keyPath(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default:
            return "is not a valid manifest: \(e)"
        }
    }

    package static func friendly(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".contains("Array") ? "a list" : "a mapping (key: value)"
        }
    }
}

/// Where images and masks are. Templates are paths relative to the dataset folder in which
/// `{id}` stands for the case id (no '/'), `*` for any characters except '/'.
/// The first image template finds the cases; the others are resolved per id.
public struct CaseSpec: Codable, Sendable, Equatable {
    /// One template per image channel (nnU-Net's _0000, _0001 ...).
    public var images: [String]
    /// The label mask; omit for nested masks.
    public var mask: String?
    /// Nested masks (Teeth-ISBI style): a pixel's class is the number of these masks covering it.
    public var nestedMasks: [String]?
    /// Paths matching any of these patterns (same syntax, `{id}` = `*`) are ignored.
    public var exclude: [String]

    package enum CodingKeys: String, CodingKey, CaseIterable { case images, mask, nestedMasks = "nested_masks", exclude }

    public init(images: [String], mask: String?, nestedMasks: [String]? = nil, exclude: [String] = []) {
        self.images = images; self.mask = mask; self.nestedMasks = nestedMasks; self.exclude = exclude
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        if let one = try? c.decode(String.self, forKey: .images) { images = [one] } else { images = try c.decode([String].self, forKey: .images) }
        mask = try c.decodeIfPresent(String.self, forKey: .mask)
        nestedMasks = try c.decodeIfPresent([String].self, forKey: .nestedMasks)
        exclude = try c.decodeIfPresent([String].self, forKey: .exclude) ?? []
        guard !images.isEmpty else { throw invalid(c, .images, "needs at least one image template") }
        guard images[0].contains("{id}") else { throw invalid(c, .images, "the first template must contain '{id}', got '\(images[0])'") }
        if mask != nil && nestedMasks != nil { throw invalid(c, .nestedMasks, "give either 'mask' or 'nested_masks', not both") }
    }
}

/// Classes, in order: index 0 first. A class is found in masks by its integer `value`
/// (grey level for 8-bit masks) or its RGB `colour`.
public struct LabelSpec: Codable, Sendable, Equatable {
    public var classes: [ClassSpec]
    /// True when class order is a severity or depth order (burn grades, tissue layers).
    public var ordinal: Bool

    package enum CodingKeys: String, CodingKey, CaseIterable { case classes, ordinal }

    public init(classes: [ClassSpec], ordinal: Bool = false) { self.classes = classes; self.ordinal = ordinal }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        classes = try c.decode([ClassSpec].self, forKey: .classes)
        ordinal = try c.decodeIfPresent(Bool.self, forKey: .ordinal) ?? false
        guard classes.count >= 2 else { throw invalid(c, .classes, "needs at least 2 classes (background and one more)") }
        guard classes.count <= 65535 else { throw invalid(c, .classes, "has more than 65535 classes") }
        let colours = classes.filter { $0.colour != nil }.count
        guard colours == 0 || colours == classes.count else {
            throw invalid(c, .classes, "give every class a 'colour' or none (mixing values and colours is ambiguous)")
        }
        var seen = Set<String>()
        for (i, cl) in classes.enumerated() {
            let key = cl.colour.map { "\($0)" } ?? "\(cl.value ?? i)"
            guard seen.insert(key).inserted else { throw invalid(c, .classes, "two classes share the source value \(key)") }
        }
    }

    /// True when masks are colour-coded.
    public var usesColours: Bool { classes.first?.colour != nil }
}

public struct ClassSpec: Codable, Sendable, Equatable {
    public var name: String
    /// Integer label or grey level in the mask file (defaults to the class index).
    public var value: Int?
    /// RGB colour in colour-coded masks.
    public var colour: [Int]?

    package enum CodingKeys: String, CodingKey, CaseIterable { case name, value, colour, color }

    public init(name: String, value: Int? = nil, colour: [Int]? = nil) { self.name = name; self.value = value; self.colour = colour }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        value = try c.decodeIfPresent(Int.self, forKey: .value)
        colour = try c.decodeIfPresent([Int].self, forKey: .colour) ?? c.decodeIfPresent([Int].self, forKey: .color)
        if let col = colour, col.count != 3 || col.contains(where: { !(0...255).contains($0) }) {
            throw invalid(c, .colour, "must be three integers 0-255, got \(col)")
        }
        if value != nil && colour != nil { throw invalid(c, .value, "give 'value' or 'colour', not both") }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(value, forKey: .value)
        try c.encodeIfPresent(colour, forKey: .colour)
    }
}

public struct GeometrySpec: Codable, Sendable, Equatable {
    public enum Axis: String, Codable, Sendable, CaseIterable { case x, y, z }
    /// How slices reach `size`: `pad` never crops and `crop` never pads (a slice that would need
    /// the other is refused before anything is written); `pad-or-crop` does either per axis
    /// (MONAI ResizeWithPadOrCrop) and reports the foreground it cropped away.
    public enum Fit: String, Codable, Sendable, CaseIterable {
        case pad, crop, resize
        case padOrCrop = "pad-or-crop"
        case cropForeground = "crop-foreground"

        /// The slice operation; nil for resize's margin-free counterpart handled by `shapeMode`.
        public func shapeMode(margin: Int) -> SliceShapeMode {
            switch self {
            case .pad: .pad
            case .crop: .crop
            case .padOrCrop: .padOrCrop
            case .cropForeground: .cropToForeground(margin: margin)
            case .resize: .resize
            }
        }

        /// Why an `height` x `width` slice cannot be shaped to `size` in this mode (nil: it can).
        public func refusal(height: Int, width: Int, size: [Int]) -> String? {
            switch self {
            case .pad where height > size[0] || width > size[1]:
                "\(height)x\(width) slices are larger than geometry.size \(size[0])x\(size[1]) and fit 'pad' never crops; use a larger size, or fit 'pad-or-crop' to centre-crop (the foreground cut away is reported)"
            case .crop where height < size[0] || width < size[1]:
                "\(height)x\(width) slices are smaller than geometry.size \(size[0])x\(size[1]) and fit 'crop' never pads; use a smaller size, or fit 'pad-or-crop'"
            default: nil
            }
        }
    }
    public enum ImageInterpolation: String, Codable, Sendable, CaseIterable { case linear, cubic }
    public enum LabelInterpolation: String, Codable, Sendable, CaseIterable {
        case nearest
        case onehotLinear = "onehot-linear"
    }

    public var orientation: String
    public var sliceAxis: Axis
    /// Target spacing per axis in mm; nil entries keep the case's own spacing. nil: keep all.
    public var targetSpacing: [Double?]?
    /// Target slice size [H, W]; nil keeps each slice's own size (2D datasets of one size).
    public var size: [Int]?
    public var fit: Fit
    public var imageInterpolation: ImageInterpolation
    public var labelInterpolation: LabelInterpolation
    /// Margin in pixels around the foreground box for crop-foreground.
    public var foregroundMargin: Int
    /// Image value of padded pixels, after normalisation; nil ('background', the default): each
    /// channel's minimum over the case, so padding looks like the scan's own background and not
    /// like tissue (0 is the mean after a z-score).
    public var padValue: Double?

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case orientation, sliceAxis = "slice_axis", targetSpacing = "target_spacing", size, fit
        case imageInterpolation = "image_interpolation", labelInterpolation = "label_interpolation"
        case foregroundMargin = "foreground_margin", padValue = "pad_value"
    }

    public init(orientation: String = "RAS", sliceAxis: Axis = .z, targetSpacing: [Double?]? = nil, size: [Int]? = nil,
                fit: Fit = .pad, imageInterpolation: ImageInterpolation = .linear,
                labelInterpolation: LabelInterpolation = .nearest, foregroundMargin: Int = 8, padValue: Double? = nil) {
        self.orientation = orientation; self.sliceAxis = sliceAxis; self.targetSpacing = targetSpacing; self.size = size
        self.fit = fit; self.imageInterpolation = imageInterpolation; self.labelInterpolation = labelInterpolation
        self.foregroundMargin = foregroundMargin; self.padValue = padValue
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        orientation = try c.decodeIfPresent(String.self, forKey: .orientation) ?? "RAS"
        sliceAxis = try c.decodeChoice(Axis.self, forKey: .sliceAxis) ?? .z
        if (try? c.decode(String.self, forKey: .targetSpacing)) == "keep" {
            targetSpacing = nil
        } else if let raw = try c.decodeIfPresent([SpacingEntry].self, forKey: .targetSpacing) {
            guard raw.count == 3 else { throw invalid(c, .targetSpacing, "needs 3 entries (x, y, z), got \(raw.count)") }
            targetSpacing = raw.map(\.value)
            if targetSpacing!.contains(where: { ($0 ?? 1) <= 0 }) { throw invalid(c, .targetSpacing, "entries must be positive numbers or 'keep'") }
        } else {
            targetSpacing = nil
        }
        size = try c.decodeIfPresent([Int].self, forKey: .size)
        if let s = size, s.count != 2 || s.contains(where: { $0 < 1 || $0 > 16384 }) {
            throw invalid(c, .size, "must be [height, width] with each 1-16384, got \(s)")
        }
        fit = try c.decodeChoice(Fit.self, forKey: .fit) ?? .pad
        imageInterpolation = try c.decodeChoice(ImageInterpolation.self, forKey: .imageInterpolation) ?? .linear
        labelInterpolation = try c.decodeChoice(LabelInterpolation.self, forKey: .labelInterpolation) ?? .nearest
        foregroundMargin = try c.decodeIfPresent(Int.self, forKey: .foregroundMargin) ?? 8
        if (try? c.decode(String.self, forKey: .padValue)) == "background" {
            padValue = nil
        } else if c.contains(.padValue) {
            guard let v = try? c.decode(Double.self, forKey: .padValue), v.isFinite else {
                throw invalid(c, .padValue, "must be a number or 'background'")
            }
            padValue = v
        } else {
            padValue = nil
        }
        let letters = Set(orientation.uppercased())
        guard orientation.count == 3, [["L", "R"], ["A", "P"], ["S", "I"]].allSatisfy({ pair in pair.filter { letters.contains(Character($0)) }.count == 1 }) else {
            throw invalid(c, .orientation, "must be a 3-letter code such as 'RAS' or 'LPS', got '\(orientation)'")
        }
        orientation = orientation.uppercased()
    }

    /// A number or the word 'keep'.
    package struct SpacingEntry: Codable, Sendable {
        package var value: Double?
        package init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode(Double.self) { value = d; return }
            guard let s = try? c.decode(String.self), s == "keep" else {
                throw DecodingError.typeMismatch(Double.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a spacing in mm or 'keep'"))
            }
            value = nil
        }
        package func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            if let value { try c.encode(value) } else { try c.encode("keep") }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(orientation, forKey: .orientation)
        try c.encode(sliceAxis, forKey: .sliceAxis)
        try c.encodeIfPresent(targetSpacing.map { $0.map { SpacingEntry(value: $0) } }, forKey: .targetSpacing)
        try c.encodeIfPresent(size, forKey: .size)
        try c.encode(fit, forKey: .fit)
        try c.encode(imageInterpolation, forKey: .imageInterpolation)
        try c.encode(labelInterpolation, forKey: .labelInterpolation)
        try c.encode(foregroundMargin, forKey: .foregroundMargin)
        // Left out at its default, so manifests written before the key existed keep their sha256.
        try c.encodeIfPresent(padValue, forKey: .padValue)
    }
}

package extension GeometrySpec.SpacingEntry { init(value: Double?) { self.value = value } }

package extension GeometrySpec {
    /// The slice axis as Processing's type (a voxel axis of the reoriented volume).
    public var slicing: SliceAxis { SliceAxis(rawValue: sliceAxis.rawValue)! }

    /// The voxel axis of a file with `affine` that becomes the slice axis once the volume is
    /// reoriented to `orientation`: convert slices along it, validate counts per slice along it
    /// (2 when the affine cannot be reoriented; convert then refuses the file).
    public func sourceSliceAxis(_ affine: Affine4) -> Int {
        (try? AxisReorientation.between(affine: affine, target: orientation))?.inputAxis[slicing.index] ?? 2
    }
}

public struct IntensitySpec: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// z-score per case over all voxels.
        case zscore
        /// z-score per case with the statistics of the image's non-zero voxels (nnU-Net's
        /// `use_mask_for_norm` region for MR, which needs no labels: reproducible at inference).
        case zscoreNonzero = "zscore-nonzero"
        /// z-score per case over foreground (mask > 0) voxels. Needs the mask, so inference
        /// cannot repeat it; kept for datasets prepared that way.
        case zscoreForeground = "zscore-foreground"
        /// CT: clip to the dataset's foreground 0.5/99.5 percentiles, z-score with dataset statistics.
        case ct
        /// min-max to [0, 1] per case.
        case minmax
        /// 8-bit RGB (or grey) to [0, 1].
        case rgb01 = "rgb-01"
        case none
    }
    public var mode: Mode

    package enum CodingKeys: String, CodingKey, CaseIterable { case mode }
    public init(mode: Mode = .zscore) { self.mode = mode }
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        mode = try c.decodeChoice(Mode.self, forKey: .mode) ?? .zscore
    }
}

public struct MapsSpec: Codable, Sendable, Equatable {
    /// Where the maps live (docs/shard-format.md, "Map storage").
    public enum Storage: String, Codable, Sendable, CaseIterable {
        /// Not in the shards: the trainer computes them per sample after augmentation with
        /// libmedprep_maps (the same kernel, the same floats). The default: shards stay near the
        /// source size, and every augmentation gets exact maps.
        case online
        /// Every class's planes, [N, K, h, w] (the format before storage modes existed).
        case dense
        /// Only present classes' planes, [P, h, w]; RRW left out where it follows exactly from
        /// the stored SDF (boundary and plain conventions).
        case compact
    }

    public var sdf: Bool
    public var rrw: Bool
    /// Signed distance convention: boundary (Kervadec, default), plain, or itk (signed Maurer;
    /// 'maurer' is read as itk).
    public var convention: SDFConvention
    public var units: DistanceUnits
    /// 1 plus deep-supervision scales (2, 4, 8).
    public var scales: [Int]
    public var storage: Storage
    /// The dtype of stored maps (dense or compact).
    public var dtype: ShardLayout.ImageDType

    package enum CodingKeys: String, CodingKey, CaseIterable { case sdf, rrw, convention, units, scales, storage, dtype }

    public init(sdf: Bool = true, rrw: Bool = true, convention: SDFConvention = .boundary, units: DistanceUnits = .px,
                scales: [Int] = [1], storage: Storage = .online, dtype: ShardLayout.ImageDType = .float32) {
        self.sdf = sdf; self.rrw = rrw; self.convention = convention; self.units = units; self.scales = scales
        self.storage = storage; self.dtype = dtype
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        sdf = try c.decodeIfPresent(Bool.self, forKey: .sdf) ?? true
        rrw = try c.decodeIfPresent(Bool.self, forKey: .rrw) ?? true
        if (try? c.decode(String.self, forKey: .convention)) == "maurer" {
            convention = .itk
        } else {
            convention = try c.decodeChoice(SDFConvention.self, forKey: .convention) ?? .boundary
        }
        units = try c.decodeChoice(DistanceUnits.self, forKey: .units) ?? .px
        scales = try c.decodeIfPresent([Int].self, forKey: .scales) ?? [1]
        storage = try c.decodeChoice(Storage.self, forKey: .storage) ?? .online
        dtype = try c.decodeChoice(ShardLayout.ImageDType.self, forKey: .dtype) ?? .float32
        guard !scales.isEmpty, scales.allSatisfy({ [1, 2, 4, 8].contains($0) }), scales == scales.sorted(), Set(scales).count == scales.count else {
            throw invalid(c, .scales, "must be increasing values from 1, 2, 4, 8, got \(scales)")
        }
    }

    /// Convert computes maps into the shards (dense or compact storage with some map enabled).
    public var storesMaps: Bool { storage != .online && (sdf || rrw) }
    /// Compact storage leaves RRW out when it follows bit for bit from the stored SDF (the
    /// kernel derives it from the SDF itself for these conventions).
    public var rrwDerivedFromSDF: Bool { storage == .compact && sdf && rrw && convention != .itk }
    /// The map tensors the shards hold.
    public var storedSDF: Bool { storesMaps && sdf }
    public var storedRRW: Bool { storesMaps && rrw && !rrwDerivedFromSDF }
}

public struct FoldSpec: Codable, Sendable, Equatable {
    public var k: Int
    public var seed: UInt64
    package enum CodingKeys: String, CodingKey, CaseIterable { case k, seed }
    public init(k: Int = 5, seed: UInt64 = 0) { self.k = k; self.seed = seed }
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        k = try c.decodeIfPresent(Int.self, forKey: .k) ?? 5
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        guard k >= 1 && k <= 1000 else { throw invalid(c, .k, "must be 1 to 1000, got '\(k)'") }
    }
}

public struct DTypeSpec: Codable, Sendable, Equatable {
    public var image: ShardLayout.ImageDType
    /// auto: uint8 up to 255 classes, else uint16.
    public var label: ShardLayout.LabelDTypeChoice
    package enum CodingKeys: String, CodingKey, CaseIterable { case image, label }
    public init(image: ShardLayout.ImageDType = .float32, label: ShardLayout.LabelDTypeChoice = .auto) { self.image = image; self.label = label }
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(CodingKeys.self)
        image = try c.decodeChoice(ShardLayout.ImageDType.self, forKey: .image) ?? .float32
        label = try c.decodeChoice(ShardLayout.LabelDTypeChoice.self, forKey: .label) ?? .auto
    }
}

// MARK: - strict decoding helpers

/// An unknown or invalid manifest key, with the full key path.
package struct ManifestKeyError: Error { let message: String }

package struct AnyKey: CodingKey {
    package var stringValue: String
    package var intValue: Int? { nil }
    package init?(stringValue: String) { self.stringValue = stringValue }
    package init?(intValue: Int) { nil }
}

package func keyPathString(_ path: [CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
}

package extension Decoder {
    /// A keyed container that rejects keys the type does not know.
    package func strictContainer<K: CodingKey & CaseIterable>(_ type: K.Type) throws -> KeyedDecodingContainer<K> where K.AllCases: Collection {
        let all = try container(keyedBy: AnyKey.self)
        let known = Set(K.allCases.map(\.stringValue))
        for key in all.allKeys where !known.contains(key.stringValue) {
            let at = keyPathString(codingPath + [key])
            throw ManifestKeyError(message: "unknown manifest key '\(at)'; expected one of: \(known.sorted().joined(separator: ", ")).")
        }
        return try container(keyedBy: K.self)
    }
}

package extension KeyedDecodingContainer {
    /// A string-valued choice; an unknown value is one sentence naming the key, the value and
    /// the allowed ones (not Swift's "Cannot initialize Axis from invalid String value w").
    package func decodeChoice<T: RawRepresentable & CaseIterable>(_ type: T.Type, forKey key: Key) throws -> T?
        where T.RawValue == String {
        guard let raw = try decodeIfPresent(String.self, forKey: key) else { return nil }
        guard let value = T(rawValue: raw) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }
            throw invalid(self, key, "must be \(allowed.dropLast().joined(separator: ", ")) or \(allowed.last!), got '\(raw)'")
        }
        return value
    }
}

package func invalid<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K, _ problem: String) -> ManifestKeyError {
    ManifestKeyError(message: "manifest key '\(keyPathString(c.codingPath + [key]))' \(problem).")
}
