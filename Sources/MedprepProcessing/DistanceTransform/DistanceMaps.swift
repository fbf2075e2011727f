import MedprepCore
import Glibc

/// Sign convention of a signed distance map. Written down, with the 1D example, in
/// docs/distance-maps.md; M is the class mask, EDT(A) the distance from each voxel of A to the
/// nearest voxel outside A (0 outside A).
public enum SDFConvention: String, Sendable, CaseIterable, Codable {
    /// Boundary loss (Kervadec et al.): EDT(not M)·(1−M) − (EDT(M) − h)·M with h = 1 voxel (px)
    /// or the smallest spacing (mm). Positive outside, negative inside, zero on the inner boundary.
    case boundary
    /// EDT(not M) − EDT(M): positive outside, negative inside, never zero (±1 voxel at the boundary).
    case plain
    /// ITK's SignedMaurerDistanceMapImageFilter with its C++ defaults (inside negative, not
    /// squared): the distance to the nearest contour voxel (a voxel of M with a voxel not in M among
    /// its 3^n − 1 neighbours), negative inside M; contour voxels are 0.
    case itk
}

/// What to compute and how.
public struct DistanceMapOptions: Sendable, Equatable {
    /// Signed distance maps in this convention; nil for none.
    public var sdf: SDFConvention?
    /// Rectified region-wise maps (see `RegionMaps`).
    public var rrw: Bool
    public var units: DistanceUnits
    public var mode: MapMode
    public var virtualVoxelAxis: VirtualVoxelAxis
    public var threads: Int

    public init(sdf: SDFConvention? = .boundary, rrw: Bool = false, units: DistanceUnits = .px,
                mode: MapMode = .volume, virtualVoxelAxis: VirtualVoxelAxis = .first, threads: Int = 1) {
        self.sdf = sdf
        self.rrw = rrw
        self.units = units
        self.mode = mode
        self.virtualVoxelAxis = virtualVoxelAxis
        self.threads = threads
    }
}

/// Per-class figures over a whole map (all slices).
public struct ClassMapSummary: Sendable, Equatable, Codable {
    public var classValue: Int
    public var voxels: Int
    public var sdfMin: Float?
    public var sdfMax: Float?
    public var rrwMin: Float?
    public var rrwMax: Float?
}

/// Maps for one grid: `sdf` and `rrw` are class-major, `[K][nz][ny][nx]` flattened (each class
/// block in the grid's x-fastest order), i.e. a NIfTI 4D volume whose last axis is the class.
public struct DistanceMapResult: Sendable {
    public let grid: MapGrid
    public let classes: [Int]
    public let sdf: [Float]?
    public let rrw: [Float]?
    public let summaries: [ClassMapSummary]
}

public enum DistanceMaps {
    /// Classes by default: 0 ... the largest label present (at least class 0).
    public static func defaultClasses<L: BinaryInteger>(_ labels: [L]) -> [Int] {
        var hi = 0
        for v in labels { let i = Int(truncatingIfNeeded: v); if i > hi { hi = i } }
        return Array(0...hi)
    }

    /// Signed distance maps, `[K × N]` class-major (see `DistanceMapResult`).
    public static func signedDistance<L: BinaryInteger>(
        labels: [L], dims: [Int], spacing: [Double] = [], classes: [Int]? = nil,
        convention: SDFConvention = .boundary, units: DistanceUnits = .px, mode: MapMode = .volume,
        virtualVoxelAxis: VirtualVoxelAxis = .first, threads: Int = 1
    ) throws -> [Float] {
        let opts = DistanceMapOptions(sdf: convention, rrw: false, units: units, mode: mode,
                                      virtualVoxelAxis: virtualVoxelAxis, threads: threads)
        return try compute(labels: labels, grid: MapGrid(dims: dims, spacing: spacing), classes: classes, options: opts).sdf!
    }

    /// Signed distance and/or RRW maps for every class in one go (the inside distances are shared).
    public static func compute<L: BinaryInteger>(
        labels: [L], grid: MapGrid, classes: [Int]? = nil, options: DistanceMapOptions
    ) throws -> DistanceMapResult {
        try DistanceTransform.checkCount(labels.count, grid)
        let classes = classes ?? defaultClasses(labels)
        guard !classes.isEmpty else { throw MedprepError(.invalidArgument, "the class list is empty.") }
        guard Set(classes).count == classes.count else {
            throw MedprepError(.invalidArgument, "class list '\(classes.map { String($0) }.joined(separator: ","))' repeats a class.")
        }
        guard classes.count < Int(UInt16.max) else {
            throw MedprepError(.invalidArgument, "'\(classes.count)' classes is more than the \(UInt16.max - 1) supported.")
        }
        guard options.threads >= 1 else {
            throw MedprepError(.invalidArgument, "thread count '\(options.threads)' must be at least 1.")
        }
        if case .slices(let axis) = options.mode, !(0...2).contains(axis) {
            throw MedprepError(.invalidArgument, "slice axis '\(axis)' must be 0 (x), 1 (y) or 2 (z).")
        }
        let t0 = _now()
        let keys = classKeys(labels, classes: classes)
        let t1 = _now()
        let K = classes.count, N = grid.count
        var sdf: [Float]? = options.sdf == nil ? nil : [Float](repeating: 0, count: K * N)
        var rrw: [Float]? = options.rrw ? [Float](repeating: 0, count: K * N) : nil
        if getenv("MP_EDT_TIMING") != nil { print("keys \(t1-t0) alloc \(_now()-t1)") }
        try withOptionalMutablePointers(&sdf, &rrw) { sp, rp in
            try keys.withUnsafeBufferPointer { kp in
                switch options.mode {
                case .volume:
                    MapKernel.run(keys: kp.baseAddress!, grid: grid, K: K, options: options, threads: options.threads,
                                      sdfOut: sp, rrwOut: rp, classStride: N)
                case .slices(let axis):
                    try runSlices(keys: kp.baseAddress!, grid: grid, axis: axis, K: K, options: options,
                                  sdfOut: sp, rrwOut: rp)
                }
            }
        }
        let t2 = _now()
        let summaries = summarize(keys: keys, classes: classes, N: N, sdf: sdf, rrw: rrw)
        if getenv("MP_EDT_TIMING") != nil { print("summ \(_now()-t2)") }
        return DistanceMapResult(grid: grid, classes: classes, sdf: sdf, rrw: rrw, summaries: summaries)
    }

    /// Nearest-neighbour downsampling for deep supervision: the voxel at index i of the coarse
    /// grid takes the label at index i·factor of the source, on every axis of size above 1 (in
    /// `.slices` mode, not along the slice axis). Coarse size ceil(n / factor), spacing ×factor:
    /// numpy's `labels[::f, ::f, ::f]`.
    public static func downsampleNearest<L: BinaryInteger>(
        labels: [L], grid: MapGrid, factor: Int, mode: MapMode = .volume
    ) throws -> (labels: [L], grid: MapGrid) {
        try DistanceTransform.checkCount(labels.count, grid)
        guard factor >= 1 else { throw MedprepError(.invalidArgument, "scale factor '\(factor)' must be at least 1.") }
        if factor == 1 { return (labels, grid) }
        var axes = [0, 1, 2]
        if case .slices(let a) = mode { axes.removeAll { $0 == a } }
        let coarse = try grid.downsampled(by: factor, axes: axes)
        let (sx, sy, sz) = (coarse.nx == grid.nx ? 1 : factor, coarse.ny == grid.ny ? 1 : factor,
                            coarse.nz == grid.nz ? 1 : factor)
        var out = [L]()
        out.reserveCapacity(coarse.count)
        for z in 0..<coarse.nz {
            for y in 0..<coarse.ny {
                let row = (z * sz * grid.ny + y * sy) * grid.nx
                for x in 0..<coarse.nx { out.append(labels[row + x * sx]) }
            }
        }
        return (out, coarse)
    }

    /// The same maps at several scales (1 = the grid itself), each computed on its own grid from
    /// `downsampleNearest`.
    public static func multiScale<L: BinaryInteger>(
        labels: [L], grid: MapGrid, classes: [Int]? = nil, scales: [Int], options: DistanceMapOptions
    ) throws -> [(scale: Int, result: DistanceMapResult)] {
        let classes = classes ?? defaultClasses(labels)
        return try scales.map { s in
            let (l, g) = try downsampleNearest(labels: labels, grid: grid, factor: s, mode: options.mode)
            return (s, try compute(labels: l, grid: g, classes: classes, options: options))
        }
    }

    // MARK: - internals

    /// Class index per voxel (0..<K), K for a label outside the class list.
    static func classKeys<L: BinaryInteger>(_ labels: [L], classes: [Int]) -> [UInt16] {
        let other = UInt16(classes.count)
        let lo = classes.min()!, hi = classes.max()!
        if hi - lo < 1 << 20 {
            var table = [UInt16](repeating: other, count: hi - lo + 1)
            for (i, c) in classes.enumerated() { table[c - lo] = UInt16(i) }
            return table.withUnsafeBufferPointer { t in
                labels.map { v -> UInt16 in
                    let i = Int(truncatingIfNeeded: v) &- lo
                    return i >= 0 && i < t.count ? t[i] : other
                }
            }
        }
        var dict = [Int: UInt16]()
        for (i, c) in classes.enumerated() { dict[c] = UInt16(i) }
        return labels.map { dict[Int(truncatingIfNeeded: $0)] ?? other }
    }

    static func withOptionalMutablePointers(
        _ a: inout [Float]?, _ b: inout [Float]?,
        _ body: (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) throws -> Void
    ) rethrows {
        func inner(_ pa: UnsafeMutablePointer<Float>?) throws {
            if b != nil {
                try b!.withUnsafeMutableBufferPointer { try body(pa, $0.baseAddress!) }
            } else {
                try body(pa, nil)
            }
        }
        if a != nil {
            try a!.withUnsafeMutableBufferPointer { try inner($0.baseAddress!) }
        } else {
            try inner(nil)
        }
    }

    /// Slice-wise: every 2D slice along `axis` is its own grid. Slices are spread over threads;
    /// each slice is computed single-threaded, so output is the same for any thread count.
    static func runSlices(keys: UnsafePointer<UInt16>, grid: MapGrid, axis: Int, K: Int, options: DistanceMapOptions,
                          sdfOut: UnsafeMutablePointer<Float>?, rrwOut: UnsafeMutablePointer<Float>?) throws {
        let sg = try grid.sliceGrid(axis: axis)
        let d3 = grid.dims3
        let strides = [1, d3[0], d3[0] * d3[1]]
        let rest = (0..<3).filter { $0 != axis }
        let (su, sv, sa) = (strides[rest[0]], strides[rest[1]], strides[axis])
        let nu = sg.nx, nv = sg.ny, M = sg.count, N = grid.count
        let kBox = SendableBox(keys), sBox = SendableBox(sdfOut), rBox = SendableBox(rrwOut)
        parallelChunks(d3[axis], threads: options.threads) { range in
            let keys = kBox.value
            var sliceKeys = [UInt16](repeating: 0, count: M)
            var ls = [Float](repeating: 0, count: sBox.value == nil ? 0 : K * M)
            var lr = [Float](repeating: 0, count: rBox.value == nil ? 0 : K * M)
            for i in range {
                let base = i * sa
                for v in 0..<nv {
                    for u in 0..<nu { sliceKeys[v * nu + u] = keys[base + v * sv + u * su] }
                }
                sliceKeys.withUnsafeBufferPointer { kp in
                    ls.withUnsafeMutableBufferPointer { lsp in
                        lr.withUnsafeMutableBufferPointer { lrp in
                            MapKernel.run(keys: kp.baseAddress!, grid: sg, K: K, options: options, threads: 1,
                                          sdfOut: sBox.value == nil ? nil : lsp.baseAddress!,
                                          rrwOut: rBox.value == nil ? nil : lrp.baseAddress!, classStride: M)
                        }
                    }
                }
                for k in 0..<K {
                    for v in 0..<nv {
                        for u in 0..<nu {
                            let dst = k * N + base + v * sv + u * su, src = k * M + v * nu + u
                            if let s = sBox.value { s[dst] = ls[src] }
                            if let r = rBox.value { r[dst] = lr[src] }
                        }
                    }
                }
            }
        }
    }

    static func summarize(keys: [UInt16], classes: [Int], N: Int, sdf: [Float]?, rrw: [Float]?) -> [ClassMapSummary] {
        var counts = [Int](repeating: 0, count: classes.count + 1)
        for k in keys { counts[Int(k)] += 1 }
        func range(_ a: [Float]?, _ k: Int) -> (Float?, Float?) {
            guard let a else { return (nil, nil) }
            var lo = Float.infinity, hi = -Float.infinity
            for i in (k * N)..<((k + 1) * N) { let v = a[i]; lo = min(lo, v); hi = max(hi, v) }
            return N > 0 ? (lo, hi) : (nil, nil)
        }
        return classes.enumerated().map { k, c in
            let (smin, smax) = range(sdf, k), (rmin, rmax) = range(rrw, k)
            return ClassMapSummary(classValue: c, voxels: counts[k], sdfMin: smin, sdfMax: smax, rrwMin: rmin, rrwMax: rmax)
        }
    }
}

