import MedprepCore

/// Plain exact Euclidean distance transforms on arrays (x fastest, see `MapGrid`).
public enum DistanceTransform {
    /// scipy's `distance_transform_edt(mask, sampling=spacing)`: for every voxel where `mask` is
    /// true, the distance to the nearest false voxel; 0 where false. A mask with no false voxel is
    /// measured, as scipy does, to a virtual false voxel at index -1 on `virtualVoxelAxis` and 0
    /// on the other axes.
    public static func edt(mask: [Bool], dims: [Int], spacing: [Double] = [],
                           virtualVoxelAxis: VirtualVoxelAxis = .first, threads: Int = 1) throws -> [Double] {
        let grid = try MapGrid(dims: dims, spacing: spacing)
        try checkCount(mask.count, grid)
        let keys = mask.map { $0 ? UInt8(1) : 0 }
        var sq = [Float](repeating: 0, count: grid.count)
        keys.withUnsafeBufferPointer { k in
            sq.withUnsafeMutableBufferPointer { o in
                EDTEngine.squaredDistances(keys: k.baseAddress!, dims: grid.dims3, spacing: grid.spacing3,
                                           out: o.baseAddress!, threads: threads)
            }
        }
        if !mask.contains(false) {
            let ctx = MapKernel.Context(grid: grid, spacing: grid.spacing3,
                                        virtualAxis: virtualVoxelAxis == .first ? 0 : grid.rank - 1, threads: threads)
            let (tx, ty, tz) = ctx.virtualTables
            return [Double](unsafeUninitializedCapacity: grid.count) { out, n in
                ctx.fillSeparable(tx, ty, tz, out: out.baseAddress!) { $0.squareRoot() }
                n = grid.count
            }
        }
        return (0..<grid.count).map { mask[$0] ? Double(sq[$0]).squareRoot() : 0 }
    }

    /// Multi-label transform: every voxel's distance to the nearest voxel with a different label
    /// (in the units of `spacing`); +infinity everywhere when the grid holds a single label.
    public static func distanceToOtherLabel<L: BinaryInteger>(labels: [L], dims: [Int], spacing: [Double] = [],
                                                              threads: Int = 1) throws -> [Float] {
        let grid = try MapGrid(dims: dims, spacing: spacing)
        try checkCount(labels.count, grid)
        let keys = labels.map { Int64(truncatingIfNeeded: $0) }
        var out = [Float](repeating: 0, count: grid.count)
        keys.withUnsafeBufferPointer { k in
            out.withUnsafeMutableBufferPointer { o in
                EDTEngine.squaredDistances(keys: k.baseAddress!, dims: grid.dims3, spacing: grid.spacing3,
                                           out: o.baseAddress!, threads: threads)
            }
        }
        for i in out.indices { out[i] = out[i].squareRoot() }
        return out
    }

    static func checkCount(_ n: Int, _ grid: MapGrid) throws {
        guard n == grid.count else {
            throw MedprepError(.invalidArgument,
                               "array of \(n) values does not match grid \(grid.dims.map { String($0) }.joined(separator: "x")) (\(grid.count) voxels).")
        }
    }
}
