import MedprepCore

/// The voxel axis a volume is cut across.
public enum SliceAxis: String, Sendable, CaseIterable, Codable {
    case x, y, z
    public var index: Int {
        switch self {
        case .x: 0
        case .y: 1
        case .z: 2
        }
    }
}

/// Where a slice came from.
public struct SliceInfo: Sendable, Equatable, Codable {
    public var axis: SliceAxis
    /// Voxel index along `axis`, counted in the volume as given (canonical after reorientation).
    public var index: Int
    /// Slices along `axis`.
    public var count: Int
    /// CORAL's normalised position `(index + 1) / count`, in double.
    public var position: Double
    /// World coordinate (mm) of the centre of the slice's first voxel (row 0, column 0) along the
    /// world axis the slice axis points along (nibabel `aff2axcodes`; in a RAS volume: x → R,
    /// y → A, z → S). For an axis-aligned volume every voxel of the slice shares it.
    public var worldCoordinate: Double
    /// Which world axis that is: 0 = x (R), 1 = y (A), 2 = z (S).
    public var worldAxis: Int
    /// Voxel sizes (mm) between rows and between columns.
    public var rowSpacing: Double
    public var columnSpacing: Double
}

/// Cutting 3D volumes into 2D slices. Rows are the slower in-plane voxel axis and columns the
/// faster one (docs/conventions.md), so a slice is a plain strided view and nothing is flipped:
///
/// | axis | rows (H) | columns (W) |
/// |------|----------|-------------|
/// | z    | y        | x           |
/// | y    | z        | x           |
/// | x    | z        | y           |
///
/// Index 0 is the low end of each axis: in a RAS volume column 0 of an axial (z) slice is the
/// patient's left and row 0 posterior; rows of y and x slices start inferior. Shown with row 0 at
/// the top, coronal and sagittal slices are upside down (docs/normalisation.md).
public enum Slicing {
    /// Voxel axes shown as rows and columns of slices along `axis`.
    public static func planeAxes(_ axis: SliceAxis) -> (rows: Int, columns: Int) {
        switch axis {
        case .z: (1, 0)
        case .y: (2, 0)
        case .x: (2, 1)
        }
    }

    /// Slice `index` along `axis` as `[C, H, W]` (channels made planar).
    public static func slice<T>(_ volume: Volume3D<T>, axis: SliceAxis, index: Int,
                                threads: Int = 1) throws -> Slice2D<T> {
        let a = axis.index
        guard index >= 0 && index < volume.dims[a] else {
            throw MedprepError(.invalidArgument, "slice index '\(index)' is out of range 0..<\(volume.dims[a]) along \(axis.rawValue).")
        }
        let p = planeAxes(axis)
        let c = volume.channels
        let stride = [c, c * volume.dims[0], c * volume.dims[0] * volume.dims[1]]
        let h = volume.dims[p.rows], w = volume.dims[p.columns]
        let kernel = StridedCopyKernel(outDims: [w, h, c], steps: [stride[p.columns], stride[p.rows], 1],
                                       base: index * stride[a], channels: 1, threads: threads, fill: nil)
        return try Slice2D(values: Words.map(volume.voxels, count: c * h * w, kernel), channels: c, height: h, width: w)
    }

    /// Every slice along `axis`, in index order.
    public static func slices<T>(_ volume: Volume3D<T>, axis: SliceAxis, threads: Int = 1) throws -> [Slice2D<T>] {
        try (0..<volume.dims[axis.index]).map { try slice(volume, axis: axis, index: $0, threads: threads) }
    }

    /// Provenance of slice `index` along `axis` of a volume with this geometry.
    public static func info(dims: [Int], spacing: [Double], affine: Affine4, axis: SliceAxis, index: Int) -> SliceInfo {
        let a = axis.index
        let p = planeAxes(axis)
        let world = Orientation.axisMappings(affine)[a]?.worldAxis ?? a
        return SliceInfo(axis: axis, index: index, count: dims[a],
                         position: Double(index + 1) / Double(dims[a]),
                         worldCoordinate: worldCoordinate(affine: affine, axis: axis, index: index, worldAxis: world),
                         worldAxis: world, rowSpacing: spacing[p.rows], columnSpacing: spacing[p.columns])
    }

    public static func info<T>(_ volume: Volume3D<T>, axis: SliceAxis, index: Int) -> SliceInfo {
        info(dims: volume.dims, spacing: volume.spacing, affine: volume.affine, axis: axis, index: index)
    }

    /// World coordinate along `worldAxis` of voxel (0, 0, 0) with `index` on the slice axis:
    /// `affine[w, a] * index + affine[w, 3]`.
    public static func worldCoordinate(affine: Affine4, axis: SliceAxis, index: Int, worldAxis w: Int) -> Double {
        affine[w, axis.index] * Double(index) + affine[w, 3]
    }
}
