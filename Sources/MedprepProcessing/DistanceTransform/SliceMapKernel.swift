import MedprepCore

/// The maps of one 2D slice exactly as a shard holds them: `medprep convert` (stored maps) and the
/// C ABI (`libmedprep_maps`, maps computed by the trainer after augmentation) both call this, so
/// maps computed online are bit-identical to stored ones.
///
/// Per scale s, the labels are downsampled by nearest neighbour (numpy `label[::s, ::s]`) and that
/// grid's maps computed for every class 0..<K, laid out [K, ceil(H/s), ceil(W/s)]. A class that
/// fills the slice is measured as scipy measures it on the [H, W] array a reader gets from the
/// shard: to a virtual pixel before the first row (`VirtualVoxelAxis.last` of the [W, H] grid).
/// Each slice is computed on one thread: callers spread slices over threads, so the bytes never
/// depend on the thread count.
public struct SliceMapKernel: Sendable {
    public let classCount: Int
    public let options: DistanceMapOptions

    /// `convention`: nil for no signed distance map.
    public init(classCount: Int, convention: SDFConvention?, rrw: Bool, units: DistanceUnits) {
        self.classCount = classCount
        options = DistanceMapOptions(sdf: convention, rrw: rrw, units: units, virtualVoxelAxis: .last, threads: 1)
    }

    /// Map plane size at scale s: ceil(H/s) × ceil(W/s).
    public static func planeSize(height: Int, width: Int, scale: Int) -> (height: Int, width: Int) {
        MapPlane.size(height: height, width: width, scale: scale)
    }

    /// Writes the maps of `labels` (H·W class indices, row-major) at `scale` into `sdfOut` and
    /// `rrwOut` (K planes each; nil for a map not asked for). `spacing`: [column (x), row (y)] in
    /// mm, used only with mm units.
    public func fill(labels: [UInt16], height: Int, width: Int, spacing: [Double], scale: Int,
                     sdfOut: UnsafeMutablePointer<Float>?, rrwOut: UnsafeMutablePointer<Float>?) throws {
        guard scale >= 1 else { throw MedprepError(.invalidArgument, "map scale '\(scale)' must be at least 1.") }
        let grid = try MapGrid(dims: [width, height], spacing: spacing)
        let (coarse, g) = try DistanceMaps.downsampleNearest(labels: labels, grid: grid, factor: scale)
        try coarse.withUnsafeBufferPointer {
            try DistanceMaps.compute(classIndices: $0, K: classCount, grid: g, options: options,
                                     sdfOut: sdfOut, rrwOut: rrwOut)
        }
    }
}
