import MedprepCore

/// Rectified region-wise maps (Valverde & Tohka), the weights of the Region-wise loss.
///
/// For every class k (background included), on each grid (the volume, or each slice):
/// - outside the class: +1;
/// - inside: −d / max(d), d the Euclidean distance to the nearest voxel not in the class (px or
///   mm), the maximum taken over the class's voxels in that grid; so values lie in [−1, 0) and
///   the deepest voxel is −1;
/// - an empty class: +1 everywhere;
/// - a class filling the whole grid: d measured as scipy's `distance_transform_edt` does, to a
///   virtual background voxel at index −1 on `virtualVoxelAxis` (0 on the other axes).
///
/// Computed for all classes at once by one multi-label transform of the label grid.
public enum RegionMaps {
    /// RRW maps, `[K × N]` class-major (see `DistanceMapResult`).
    public static func rrw<L: BinaryInteger>(
        labels: [L], dims: [Int], spacing: [Double] = [], classes: [Int]? = nil, units: DistanceUnits = .px,
        mode: MapMode = .volume, virtualVoxelAxis: VirtualVoxelAxis = .first, threads: Int = 1
    ) throws -> [Float] {
        let opts = DistanceMapOptions(sdf: nil, rrw: true, units: units, mode: mode,
                                      virtualVoxelAxis: virtualVoxelAxis, threads: threads)
        return try DistanceMaps.compute(labels: labels, grid: MapGrid(dims: dims, spacing: spacing),
                                        classes: classes, options: opts).rrw!
    }
}
