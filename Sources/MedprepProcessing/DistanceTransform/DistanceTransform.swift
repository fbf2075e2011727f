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
            let axis = virtualVoxelAxis == .first ? 0 : grid.rank - 1
            return (0..<grid.count).map { virtualDistance(index: $0, grid: grid, axis: axis, spacing: grid.spacing3) }
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

    /// Distance from voxel `index` to scipy's virtual background voxel (-1 on `axis`, 0 elsewhere).
    @inline(__always)
    static func virtualDistance(index: Int, grid: MapGrid, axis: Int, spacing: [Double]) -> Double {
        let nx = grid.nx, ny = grid.ny
        let p = [index % nx, (index / nx) % ny, index / (nx * ny)]
        var s = 0.0
        for d in 0..<3 {
            let c = Double(d == axis ? p[d] + 1 : p[d]) * spacing[d]
            s += c * c
        }
        return s.squareRoot()
    }
}
