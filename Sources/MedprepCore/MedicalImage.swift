/// Which file format an image was read from.
public enum ImageFormat: String, Sendable, Codable {
    case nifti1 = "nifti1", nifti2 = "nifti2", analyzePair = "nifti1-pair", nifti2Pair = "nifti2-pair"
    case png, jpeg
}

/// Linear intensity scaling stored in the file (NIfTI scl_slope / scl_inter).
/// Only present when it applies (nibabel: slope 0 or non-finite means none).
public struct IntensityScaling: Sendable, Equatable, Codable {
    public var slope: Double
    public var intercept: Double
    public init(slope: Double, intercept: Double) {
        self.slope = slope
        self.intercept = intercept
    }
}

/// The one in-memory image model for every format.
///
/// Conventions (pinned by tests, written down in docs/conventions.md):
/// - `dims` are the grid sizes with x fastest, as NIfTI stores them; up to 7.
///   A 2D image has dims [width, height] with x = column, y = row, pixel (0,0) top-left.
/// - `spacing[d]` is the voxel size along dims[d] (pixdim); extra dims keep their pixdim.
/// - voxels are channel-interleaved (see `VoxelBuffer`).
public struct MedicalImage: Sendable {
    public var format: ImageFormat
    public var dims: [Int]
    public var spacing: [Double]
    public var channels: Int
    public var affine: Affine4
    public var affineSource: AffineSource
    public var scaling: IntensityScaling?
    public var voxels: VoxelBuffer
    /// Palette images: the stored indices are labels; the palette is kept (RGB triples).
    public var palette: [UInt8]?
    /// The datatype as the file names it ("int16", "rgb24", "uint8"...), for reports.
    public var sourceDatatype: String

    public init(format: ImageFormat, dims: [Int], spacing: [Double], channels: Int = 1,
                affine: Affine4, affineSource: AffineSource, scaling: IntensityScaling? = nil,
                voxels: VoxelBuffer, palette: [UInt8]? = nil, sourceDatatype: String? = nil) {
        precondition(!dims.isEmpty && dims.count <= 7, "1 to 7 dims")
        precondition(voxels.count == dims.reduce(1, *) * channels, "voxel count must match dims x channels")
        self.format = format
        self.dims = dims
        self.spacing = spacing
        self.channels = channels
        self.affine = affine
        self.affineSource = affineSource
        self.scaling = scaling
        self.voxels = voxels
        self.palette = palette
        self.sourceDatatype = sourceDatatype ?? voxels.type.rawValue
    }

    /// Number of grid points (not counting channels).
    public var voxelCount: Int { dims.reduce(1, *) }

    /// The first three dims padded with 1: the spatial grid of one frame.
    public var spatialDims: [Int] { (0..<3).map { $0 < dims.count ? dims[$0] : 1 } }

    /// Number of 3D frames (product of dims 4...7).
    public var frameCount: Int { dims.count > 3 ? dims[3...].reduce(1, *) : 1 }

    /// Orientation code of the affine, e.g. "RAS".
    public var orientation: String { Orientation.code(affine) }

    /// Bytes the stored voxels take in memory.
    public var memoryBytes: Int { voxels.count * voxels.type.byteWidth }

    /// Applies the file's scaling to a stored value.
    @inlinable public func scaled(_ raw: Double) -> Double {
        guard let s = scaling else { return raw }
        return raw * s.slope + s.intercept
    }

    /// Scaled values as Float (what a network consumes), all frames.
    public func scaledFloats() -> [Float] {
        if case .float32(let a) = voxels, scaling == nil { return a }
        let s = scaling
        func conv<T: VoxelScalar>(_ a: [T]) -> [Float] {
            HugePages.array(count: a.count) { out in
                a.withUnsafeBufferPointer { VoxelConversion.toFloat($0, out, scaling: s) }
            }
        }
        switch voxels {
        case .uint8(let a): return conv(a)
        case .int8(let a): return conv(a)
        case .int16(let a): return conv(a)
        case .uint16(let a): return conv(a)
        case .int32(let a): return conv(a)
        case .uint32(let a): return conv(a)
        case .int64(let a): return conv(a)
        case .uint64(let a): return conv(a)
        case .float32(let a): return conv(a)
        case .float64(let a): return conv(a)
        }
    }

    /// One 3D frame (t index over dims 4...7 flattened) as a new image.
    public func frame(_ t: Int) throws -> MedicalImage {
        guard t >= 0 && t < frameCount else {
            throw MedprepError(.invalidArgument, "frame index '\(t)' is out of range 0..<\(frameCount).")
        }
        let per = spatialDims.reduce(1, *) * channels
        let range = (t * per)..<((t + 1) * per)
        let sub: VoxelBuffer
        switch voxels {
        case .uint8(let a): sub = .uint8(Array(a[range]))
        case .int8(let a): sub = .int8(Array(a[range]))
        case .int16(let a): sub = .int16(Array(a[range]))
        case .uint16(let a): sub = .uint16(Array(a[range]))
        case .int32(let a): sub = .int32(Array(a[range]))
        case .uint32(let a): sub = .uint32(Array(a[range]))
        case .int64(let a): sub = .int64(Array(a[range]))
        case .uint64(let a): sub = .uint64(Array(a[range]))
        case .float32(let a): sub = .float32(Array(a[range]))
        case .float64(let a): sub = .float64(Array(a[range]))
        }
        let d = Array(dims.prefix(3))
        return MedicalImage(format: format, dims: d, spacing: Array(spacing.prefix(d.count)), channels: channels,
                            affine: affine, affineSource: affineSource, scaling: scaling, voxels: sub, palette: palette,
                            sourceDatatype: sourceDatatype)
    }

    /// TorchIO-style one-line summary.
    public var summary: String {
        let dimStr = dims.map(String.init).joined(separator: "x")
        let sp = spacing.prefix(min(3, dims.count)).map { formatShort($0) }.joined(separator: ", ")
        let mib = Double(memoryBytes) / 1_048_576
        return "\(format.rawValue) \(dimStr) \(voxels.type.rawValue)\(channels > 1 ? " x\(channels) channels" : "") "
            + "spacing (\(sp)) \(orientation) \(formatShort(mib)) MiB"
    }
}

/// Short decimal formatting without Foundation's locale surprises.
public func formatShort(_ v: Double) -> String {
    if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
    var s = String(format4: v)
    while s.hasSuffix("0") { s.removeLast() }
    return s
}

extension String {
    init(format4 v: Double) {
        let scaled = (v * 10000).rounded() / 10000
        self = "\(scaled)"
    }
}
