import MedprepCore

/// The shape of every shard of one conversion: what docs/shard-format.md describes.
///
/// Per sample (one 2D slice), row-major [H, W] planes, row = y, column = x, pixel (0,0) the
/// top-left (numpy `a[y, x]`; `plt.imshow(a)` shows it upright with the default origin "upper"):
///
/// | tensor | dtype | shape |
/// |---|---|---|
/// | `image` | F32 (F16 if asked) | [N, C, H, W] |
/// | `label` | U8 (U16 when K > 255, or when asked) | [N, H, W] |
/// | `sdf`, `rrw` (scale 1) | F32 | [N, K, H, W] |
/// | `sdf_s{s}`, `rrw_s{s}` (scale s > 1) | F32 | [N, K, ceil(H/s), ceil(W/s)] |
/// | `case_index`, `slice_index`, `slice_count` | I32 | [N] |
/// | `position`, `slice_coord_mm` | F64 | [N] |
/// | `pcl_partition` | U8 | [N] |
/// | `class_presence` | U8 | [N, K] |
///
/// Maps may be F16 (`mapDType`), and `compactMaps` keeps only the planes of classes present in
/// each sample: a map tensor is then [P, h, w], P = the number of ones in `class_presence`, in
/// (sample, class) order; an absent class's maps are the constants of the empty-class rule.
public struct ShardLayout: Sendable, Equatable {
    public enum ImageDType: String, Sendable, CaseIterable, Codable {
        case float32, float16

        public var safetensors: SafetensorsDType { self == .float32 ? .F32 : .F16 }
    }

    /// Label dtype: `auto` is U8 up to 255 classes and U16 above (the manifest's `dtypes.label`).
    public enum LabelDTypeChoice: String, Sendable, CaseIterable, Codable {
        case auto, uint8, uint16
    }

    public static let format = "medprep-shard"
    public static let formatVersion = "1"
    /// Partitions used by `pcl_partition` (positional contrastive learning).
    public static let pclPartitions = 4

    /// Image channels C.
    public var channels: Int
    /// Slice height H (rows, y) and width W (columns, x).
    public var height: Int
    public var width: Int
    /// Class count K: label values are 0..<K; maps and class_presence have K channels.
    public var classCount: Int
    public var imageDType: ImageDType
    /// U8 or U16 (resolved from `LabelDTypeChoice`).
    public var labelDType: SafetensorsDType
    public var sdf: Bool
    public var rrw: Bool
    /// Map scales, ascending and unique, each >= 1 (1 = full resolution).
    public var mapScales: [Int]
    /// F32 or F16 map tensors.
    public var mapDType: SafetensorsDType
    /// Map tensors hold present classes' planes only ([P, h, w]).
    public var compactMaps: Bool

    public init(channels: Int, height: Int, width: Int, classCount: Int, imageDType: ImageDType = .float32,
                labelDType: LabelDTypeChoice = .auto, sdf: Bool = true, rrw: Bool = true, mapScales: [Int] = [1],
                mapDType: SafetensorsDType = .F32, compactMaps: Bool = false) throws {
        guard channels >= 1, height >= 1, width >= 1 else {
            throw MedprepError(.invalidArgument, "shard layout needs channels, height and width >= 1, got C=\(channels) H=\(height) W=\(width).")
        }
        guard classCount >= 1, classCount <= 65536 else {
            throw MedprepError(.invalidArgument, "class count '\(classCount)' is out of range 1...65536.")
        }
        let scales = Array(Set(mapScales)).sorted()
        guard scales.allSatisfy({ $0 >= 1 }) else {
            throw MedprepError(.invalidArgument, "map scales \(mapScales) must all be >= 1.")
        }
        guard !(sdf || rrw) || !scales.isEmpty else {
            throw MedprepError(.invalidArgument, "maps are enabled but no map scale is given.")
        }
        self.channels = channels
        self.height = height
        self.width = width
        self.classCount = classCount
        self.imageDType = imageDType
        switch labelDType {
        case .auto: self.labelDType = classCount > 255 ? .U16 : .U8
        case .uint16: self.labelDType = .U16
        case .uint8:
            guard classCount <= 256 else {
                throw MedprepError(.invalidArgument, "label dtype 'uint8' cannot hold \(classCount) classes (at most 256); use 'uint16' or 'auto'.")
            }
            self.labelDType = .U8
        }
        guard mapDType == .F32 || mapDType == .F16 else {
            throw MedprepError(.invalidArgument, "map dtype '\(mapDType.rawValue)' must be F32 or F16.")
        }
        self.sdf = sdf
        self.rrw = rrw
        self.mapScales = scales
        self.mapDType = mapDType
        self.compactMaps = compactMaps
    }

    /// Maps are stored as the builder computes them (dense F32): no re-encoding when sealing.
    public var mapsAsComputed: Bool { mapDType == .F32 && !compactMaps }

    /// Map plane size at a scale: ceil(H/s) × ceil(W/s).
    public func mapSize(scale: Int) -> (height: Int, width: Int) {
        MapPlane.size(height: height, width: width, scale: scale)
    }

    /// `sdf`/`rrw` at scale 1, `sdf_s2`/`rrw_s2` at scale 2, ...
    public static func mapTensorName(_ kind: String, scale: Int) -> String {
        scale == 1 ? kind : "\(kind)_s\(scale)"
    }

    /// The map tensors this layout has, with their scale: sdf first, then rrw, scales ascending.
    public var mapTensors: [(name: String, kind: String, scale: Int)] {
        var out: [(String, String, Int)] = []
        for kind in ["sdf", "rrw"] where (kind == "sdf" ? sdf : rrw) {
            for s in mapScales { out.append((ShardLayout.mapTensorName(kind, scale: s), kind, s)) }
        }
        return out
    }

    /// Shard file name: `shard-00000.safetensors` (five digits, more if needed).
    public static func fileName(shardIndex: Int) -> String {
        let digits = String(shardIndex)
        return "shard-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".safetensors"
    }

    /// Slice position p = (i+1)/N in float64, i the 0-based index in the canonical orientation.
    public static func position(sliceIndex: Int, sliceCount: Int) -> Double {
        Double(sliceIndex + 1) / Double(sliceCount)
    }

    /// PCL partition 1...4: the volume's slices split into 4 equal runs by index,
    /// partition = floor(4·i/N) + 1 (integer arithmetic, so no rounding questions).
    public static func pclPartition(sliceIndex: Int, sliceCount: Int) -> Int {
        (pclPartitions * sliceIndex) / sliceCount + 1
    }
}

/// One 2D sample (a slice) to pack. Planes are row-major [H, W] (row = y, column = x).
public struct ShardSample: Sendable {
    /// C·H·W values, layout [C, H, W].
    public var image: [Float]
    /// H·W labels, values 0..<K.
    public var label: [UInt16]
    /// Per map scale, K·h·w values, layout [K, h, w] with h = ceil(H/s), w = ceil(W/s).
    public var sdf: [Int: [Float]]
    public var rrw: [Int: [Float]]
    public var caseIndex: Int
    /// 0-based index of the slice in its volume, in the canonical orientation.
    public var sliceIndex: Int
    /// Slices in the volume (N of p = (i+1)/N).
    public var sliceCount: Int
    /// Physical coordinate of the slice along the slice axis, millimetres.
    public var sliceCoordMM: Double
    /// Defaults to `ShardLayout.pclPartition`.
    public var pclPartition: Int?
    /// K flags (0/1); nil computes them from `label` (1 when some pixel has class k).
    public var classPresence: [UInt8]?

    public init(image: [Float], label: [UInt16], sdf: [Int: [Float]] = [:], rrw: [Int: [Float]] = [:],
                caseIndex: Int, sliceIndex: Int, sliceCount: Int, sliceCoordMM: Double,
                pclPartition: Int? = nil, classPresence: [UInt8]? = nil) {
        self.image = image
        self.label = label
        self.sdf = sdf
        self.rrw = rrw
        self.caseIndex = caseIndex
        self.sliceIndex = sliceIndex
        self.sliceCount = sliceCount
        self.sliceCoordMM = sliceCoordMM
        self.pclPartition = pclPartition
        self.classPresence = classPresence
    }

    public init(image: [Float], label: [UInt8], sdf: [Int: [Float]] = [:], rrw: [Int: [Float]] = [:],
                caseIndex: Int, sliceIndex: Int, sliceCount: Int, sliceCoordMM: Double,
                pclPartition: Int? = nil, classPresence: [UInt8]? = nil) {
        self.init(image: image, label: label.map(UInt16.init), sdf: sdf, rrw: rrw, caseIndex: caseIndex,
                  sliceIndex: sliceIndex, sliceCount: sliceCount, sliceCoordMM: sliceCoordMM,
                  pclPartition: pclPartition, classPresence: classPresence)
    }
}
