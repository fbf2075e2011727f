import MedprepCore
import MedprepIO
import MedprepProcessing

/// index.json, the description of a `medprep convert` output (Schemas/shard-index.schema.json).
/// Convert builds it as this value and encodes it with `JSONValueEncoder`; merge joins parts as
/// values; verify, inspect and preview decode it (`JSONValueDecoder`) once it has passed the
/// schema check. Every type's `CodingKeys` list the schema's properties in the schema's order
/// (a test holds the two together), and a property is optional here exactly when the schema
/// does not require it.
public struct ShardIndex: Codable, Sendable, Equatable {
    public static let format = "medprep-index"
    public static let formatVersion = 1

    public var format = ShardIndex.format
    public var formatVersion = ShardIndex.formatVersion
    public var medprepVersion: String
    public var manifestSHA256: String
    public var dataset: Dataset
    public var classes: [Class]
    public var ordinal: Bool
    /// Every parameter the conversion used: the manifest with its defaults (free-form).
    public var parameters: JSON
    public var normalisation: Normalisation
    public var maps: Maps
    public var shards: [Shard]
    public var cases: [Case]
    public var skippedCases: [SkippedCase]
    public var sampleCount: Int
    public var folds: Folds
    /// Written by `convert --part i/n`; a merged index has none.
    public var part: Part?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case format, formatVersion = "format_version", medprepVersion = "medprep_version", manifestSHA256 = "manifest_sha256"
        case dataset, classes, ordinal, parameters, normalisation, maps, shards, cases
        case skippedCases = "skipped_cases", sampleCount = "sample_count", folds, part
    }

    public struct Dataset: Codable, Sendable, Equatable {
        public var name: String
        public enum CodingKeys: String, CodingKey, CaseIterable { case name }
        public init(name: String) { self.name = name }
    }

    public struct Class: Codable, Sendable, Equatable {
        public var index: Int
        public var name: String
        /// The mask values of a grey-level mask (exactly one of sourceValues, colours).
        public var sourceValues: [Int]?
        /// The RGB colours of a colour mask.
        public var colours: [[Int]]?
        public var ordinalRank: Int?
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case index, name, sourceValues = "source_values", colours, ordinalRank = "ordinal_rank"
        }
        public init(index: Int, name: String, sourceValues: [Int]? = nil, colours: [[Int]]? = nil, ordinalRank: Int? = nil) {
            self.index = index; self.name = name; self.sourceValues = sourceValues; self.colours = colours; self.ordinalRank = ordinalRank
        }
        /// As the schema: exactly one of source_values and colours.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(Int.self, forKey: .index)
            name = try c.decode(String.self, forKey: .name)
            sourceValues = try c.decodeIfPresent([Int].self, forKey: .sourceValues)
            colours = try c.decodeIfPresent([[Int]].self, forKey: .colours)
            ordinalRank = try c.decodeIfPresent(Int.self, forKey: .ordinalRank)
            guard (sourceValues == nil) != (colours == nil) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "a class has exactly one of 'source_values' and 'colours'"))
            }
        }
    }

    /// How the image intensities were normalised, with the statistics each case used.
    public struct Normalisation: Codable, Sendable, Equatable {
        public var mode: IntensitySpec.Mode
        /// Where the statistics come from, in words.
        public var statistics: String
        /// Dataset statistics per channel (mode `ct`).
        public var dataset: [CTChannel]?
        /// The manifest's pad value, or `background` in words (then `cases[].pad_values`).
        public var padValue: PadValue?
        public var cases: [CaseNormalisation]
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case mode, statistics, dataset, padValue = "pad_value", cases
        }
        public init(mode: IntensitySpec.Mode, statistics: String, dataset: [CTChannel]?, padValue: PadValue?, cases: [CaseNormalisation]) {
            self.mode = mode; self.statistics = statistics; self.dataset = dataset; self.padValue = padValue; self.cases = cases
        }
    }

    public struct CTChannel: Codable, Sendable, Equatable {
        public var channel: Int
        public var lower: Double
        public var upper: Double
        public var mean: Double
        public var std: Double
        public var samples: Int
        public enum CodingKeys: String, CodingKey, CaseIterable { case channel, lower, upper, mean, std, samples }
        public init(channel: Int, lower: Double, upper: Double, mean: Double, std: Double, samples: Int) {
            self.channel = channel; self.lower = lower; self.upper = upper; self.mean = mean; self.std = std; self.samples = samples
        }
    }

    /// A number, or a sentence saying how each case's value was chosen.
    public enum PadValue: Codable, Sendable, Equatable {
        case value(Double)
        case rule(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode(Double.self) { self = .value(d) } else { self = .rule(try c.decode(String.self)) }
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .value(let d): try c.encode(d)
            case .rule(let s): try c.encode(s)
            }
        }
    }

    public struct CaseNormalisation: Codable, Sendable, Equatable {
        public var caseIndex: Int
        public var channels: [ChannelStatistics]
        /// What each channel's padding was filled with.
        public var padValues: [Double]?
        public enum CodingKeys: String, CodingKey, CaseIterable { case caseIndex = "case_index", channels, padValues = "pad_values" }
        public init(caseIndex: Int, channels: [ChannelStatistics], padValues: [Double]?) {
            self.caseIndex = caseIndex; self.channels = channels; self.padValues = padValues
        }
    }

    /// One channel's statistics: mean/std (z-score modes) or min/max (minmax).
    public struct ChannelStatistics: Codable, Sendable, Equatable {
        public var channel: Int
        public var min: Double?
        public var max: Double?
        public var mean: Double?
        public var std: Double?
        /// zscore-foreground: the statistics came from label > 0 voxels (false: the case had none).
        public var foregroundOnly: Bool?
        /// zscore-nonzero: the statistics came from the image's non-zero voxels.
        public var nonzeroOnly: Bool?
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case channel, min, max, mean, std, foregroundOnly = "foreground_only", nonzeroOnly = "nonzero_only"
        }
        public init(channel: Int, min: Double? = nil, max: Double? = nil, mean: Double? = nil, std: Double? = nil,
                    foregroundOnly: Bool? = nil, nonzeroOnly: Bool? = nil) {
            self.channel = channel; self.min = min; self.max = max; self.mean = mean; self.std = std
            self.foregroundOnly = foregroundOnly; self.nonzeroOnly = nonzeroOnly
        }
    }

    /// The maps settings, and what of them the shards store.
    public struct Maps: Codable, Sendable, Equatable {
        public var convention: SDFConvention
        /// dtype of stored map tensors (absent: float32).
        public var dtype: ShardLayout.ImageDType?
        public var rrw: Bool
        public var scales: [Int]
        public var sdf: Bool
        /// Absent in indexes written before storage modes: dense.
        public var storage: MapsSpec.Storage?
        public var units: DistanceUnits
        /// RRW is not stored: it follows exactly from the stored SDF.
        public var rrwFromSDF: Bool?
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case convention, dtype, rrw, scales, sdf, storage, units, rrwFromSDF = "rrw_from_sdf"
        }

        public init(_ spec: MapsSpec) {
            convention = spec.convention; dtype = spec.dtype; rrw = spec.rrw; scales = spec.scales; sdf = spec.sdf
            storage = spec.storage; units = spec.units; rrwFromSDF = spec.rrwDerivedFromSDF
        }

        public var effectiveStorage: MapsSpec.Storage { storage ?? .dense }
        public var effectiveDType: ShardLayout.ImageDType { dtype ?? .float32 }
        /// Whether the shards hold sdf / rrw tensors.
        public var storedSDF: Bool { sdf && effectiveStorage != .online }
        public var storedRRW: Bool { rrw && effectiveStorage != .online && rrwFromSDF != true }
    }

    /// A shard file: what `ShardBuilder` reports having written.
    public typealias Shard = ShardRecord

    public struct Source: Codable, Sendable, Equatable {
        public enum Role: String, Codable, Sendable, CaseIterable { case image, mask }
        public var role: Role
        /// The channel of a multi-file image.
        public var channel: Int?
        /// Relative to the dataset root.
        public var path: String
        public var sha256: String
        public enum CodingKeys: String, CodingKey, CaseIterable { case role, channel, path, sha256 }
        public init(role: Role, channel: Int?, path: String, sha256: String) {
            self.role = role; self.channel = channel; self.path = path; self.sha256 = sha256
        }
    }

    /// The geometry of a case's first image as read, before reorientation and resampling.
    public struct OriginalGeometry: Codable, Sendable, Equatable {
        public var dims: [Int]
        public var spacing: [Double]
        public var affine: [[Double]]
        public var orientation: String
        public enum CodingKeys: String, CodingKey, CaseIterable { case dims, spacing, affine, orientation }
        public init(dims: [Int], spacing: [Double], affine: [[Double]], orientation: String) {
            self.dims = dims; self.spacing = spacing; self.affine = affine; self.orientation = orientation
        }
    }

    public struct SliceRange: Codable, Sendable, Equatable {
        public var firstSample: Int
        public var count: Int
        public enum CodingKeys: String, CodingKey, CaseIterable { case firstSample = "first_sample", count }
        public init(firstSample: Int, count: Int) { self.firstSample = firstSample; self.count = count }
    }

    public struct Case: Codable, Sendable, Equatable {
        public var caseIndex: Int
        public var id: String
        public var sources: [Source]
        public var originalGeometry: OriginalGeometry
        public var sliceAxis: SliceAxis
        /// [row, column] mm of the shard slices (the processed spacing; absent in older indexes).
        public var sliceSpacingMM: [Double]?
        /// The distance between consecutive slices: with sliceSpacingMM the sampling of the stacked slices.
        public var sliceStepMM: Double?
        /// Filled in when the case's samples are placed in shards.
        public var sliceRange: SliceRange
        public var fold: Int
        /// JPEG mask pixels snapped to the nearest declared class.
        public var jpegAmbiguousPixels: Int?
        /// Label > 0 pixels that shaping cut off.
        public var foregroundPixelsCropped: Int?
        public enum CodingKeys: String, CodingKey, CaseIterable {
            case caseIndex = "case_index", id, sources, originalGeometry = "original_geometry", sliceAxis = "slice_axis"
            case sliceSpacingMM = "slice_spacing_mm", sliceStepMM = "slice_step_mm", sliceRange = "slice_range", fold
            case jpegAmbiguousPixels = "jpeg_ambiguous_pixels", foregroundPixelsCropped = "foreground_pixels_cropped"
        }
        public init(caseIndex: Int, id: String, sources: [Source], originalGeometry: OriginalGeometry, sliceAxis: SliceAxis,
                    sliceSpacingMM: [Double]?, sliceStepMM: Double?, sliceRange: SliceRange, fold: Int,
                    jpegAmbiguousPixels: Int? = nil, foregroundPixelsCropped: Int? = nil) {
            self.caseIndex = caseIndex; self.id = id; self.sources = sources; self.originalGeometry = originalGeometry
            self.sliceAxis = sliceAxis; self.sliceSpacingMM = sliceSpacingMM; self.sliceStepMM = sliceStepMM
            self.sliceRange = sliceRange; self.fold = fold
            self.jpegAmbiguousPixels = jpegAmbiguousPixels; self.foregroundPixelsCropped = foregroundPixelsCropped
        }
    }

    public struct SkippedCase: Codable, Sendable, Equatable {
        public var id: String
        public var reason: String
        public enum CodingKeys: String, CodingKey, CaseIterable { case id, reason }
        public init(id: String, reason: String) { self.id = id; self.reason = reason }
    }

    public struct Folds: Codable, Sendable, Equatable {
        public var k: Int
        public var seed: Int
        public enum CodingKeys: String, CodingKey, CaseIterable { case k, seed }
        public init(k: Int, seed: Int) { self.k = k; self.seed = seed }
    }

    public struct Part: Codable, Sendable, Equatable {
        public var index: Int
        public var count: Int
        public enum CodingKeys: String, CodingKey, CaseIterable { case index, count }
        public init(index: Int, count: Int) { self.index = index; self.count = count }
    }

    public init(medprepVersion: String, manifestSHA256: String, dataset: Dataset, classes: [Class], ordinal: Bool,
                parameters: JSON, normalisation: Normalisation, maps: Maps, shards: [Shard], cases: [Case],
                skippedCases: [SkippedCase], sampleCount: Int, folds: Folds, part: Part?) {
        self.medprepVersion = medprepVersion; self.manifestSHA256 = manifestSHA256; self.dataset = dataset
        self.classes = classes; self.ordinal = ordinal; self.parameters = parameters; self.normalisation = normalisation
        self.maps = maps; self.shards = shards; self.cases = cases; self.skippedCases = skippedCases
        self.sampleCount = sampleCount; self.folds = folds; self.part = part
    }

    /// `parameters.dtypes.image` / `.label` and `parameters.geometry.size` ([H, W]) as written.
    public var imageDType: String? { parameters["dtypes"]?["image"]?.stringValue }
    public var labelDType: String? { parameters["dtypes"]?["label"]?.stringValue }
    public var sliceSize: [Int]? {
        guard let a = parameters["geometry"]?["size"]?.arrayValue, a.count == 2 else { return nil }
        let v = a.compactMap(\.intValue)
        return v.count == 2 ? v : nil
    }

    /// The index as JSON (keys in `CodingKeys` order) and as the text convert writes.
    public var json: JSON { get throws { try JSONValueEncoder().encode(self) } }
    public func serialized() throws -> String { try json.serialized(indent: 2) + "\n" }

    /// Decodes an index that has the schema's structure (check it first: `IndexSchema.check`).
    public init(json: JSON) throws { self = try JSONValueDecoder().decode(ShardIndex.self, from: json) }
}
