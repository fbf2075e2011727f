import MedprepCore

/// The grid change of a resampling: sizes before and after, and where each output voxel samples
/// the input. Alignment is scipy's `zoom(..., grid_mode=True)` (half-pixel, like
/// `F.interpolate(align_corners=False)`): voxels are cells, the outer edges of the first and last
/// cells stay where they were, so the physical extent is preserved exactly and output voxel `o`
/// samples input coordinate `(o + 0.5) * nIn / nOut - 0.5`.
public struct ResamplePlan: Sendable, Equatable {
    public let inputDims: [Int]
    public let outputDims: [Int]

    /// A plan from explicit sizes (each at least 1).
    public init(inputDims: [Int], outputDims: [Int]) throws {
        guard inputDims.count == outputDims.count, !inputDims.isEmpty,
              inputDims.allSatisfy({ $0 >= 1 }), outputDims.allSatisfy({ $0 >= 1 }) else {
            throw MedprepError(.invalidArgument, "cannot resample from '\(inputDims)' to '\(outputDims)': sizes must be at least 1 on the same number of axes.")
        }
        self.inputDims = inputDims
        self.outputDims = outputDims
    }

    /// A plan to `target` spacing; a `nil` target keeps that axis untouched.
    /// Output size per axis: `max(1, round(n * spacing / target))`, rounding half to even as
    /// numpy's `np.round` (nnU-Net computes its new shape this way).
    public init(dims: [Int], spacing: [Double], target: [Double?]) throws {
        guard target.count == dims.count, spacing.count >= dims.count else {
            throw MedprepError(.invalidArgument, "target spacing '\(target.map { $0.map { "\($0)" } ?? "keep" })' needs one entry per axis of '\(dims)'.")
        }
        var out = dims
        for (a, t) in target.enumerated() {
            guard let t else { continue }
            guard t.isFinite && t > 0 else {
                throw MedprepError(.invalidArgument, "target spacing '\(t)' on axis \(a) must be finite and positive.")
            }
            out[a] = ResamplePlan.outputSize(dims[a], spacing: spacing[a], target: t)
        }
        try self.init(inputDims: dims, outputDims: out)
    }

    /// `max(1, round(n * spacing / target))`, half to even.
    public static func outputSize(_ n: Int, spacing: Double, target: Double) -> Int {
        let v = (Double(n) * spacing / target).rounded(.toNearestOrEven)
        guard v.isFinite else { return 1 }
        return max(1, Int(min(v, Double(Int32.max))))
    }

    /// Input voxels per output voxel on `axis`: `nIn / nOut` (scipy's grid_mode zoom factor).
    public func step(_ axis: Int) -> Double { Double(inputDims[axis]) / Double(outputDims[axis]) }

    /// The input coordinate output index `o` samples on `axis`, computed with scipy's operations in
    /// its order so that nearest-neighbour ties break identically.
    public func sourceCoordinate(_ o: Int, axis: Int) -> Double {
        ResampleTables.coordinate(o, step: step(axis))
    }

    /// Voxel sizes after resampling: `spacing * nIn / nOut`. This is the requested target only when
    /// `n * spacing / target` is a whole number; otherwise it is the size that keeps the extent.
    public func outputSpacing(_ spacing: [Double]) -> [Double] {
        spacing.enumerated().map { a, s in a < inputDims.count ? s * step(a) : s }
    }

    /// The affine of the output grid: `affine * M`, where `M` scales voxel axis `a` by
    /// `nIn / nOut` and moves the origin to the first output voxel's centre, input coordinate
    /// `0.5 * nIn / nOut - 0.5` on each axis.
    public func outputAffine(_ affine: Affine4) -> Affine4 {
        var m = Affine4.identity
        for a in 0..<min(3, inputDims.count) {
            let z = step(a)
            m[a, a] = z
            m[a, 3] = 0.5 * z - 0.5
        }
        return affine * m
    }

    public var isIdentity: Bool { inputDims == outputDims }
}

/// Per-axis sampling tables, the same arithmetic as scipy's `NI_ZoomShift` and
/// `get_spline_interpolation_weights` (ni_interpolation.c, ni_splines.c).
enum ResampleTables {
    /// scipy: `cc = kk; cc += 0.5; cc *= zoom; cc -= 0.5` (then `+= nprepad`).
    @inline(__always)
    static func coordinate(_ o: Int, step: Double) -> Double {
        var cc = Double(o)
        cc += 0.5
        cc *= step
        cc -= 0.5
        return cc
    }

    /// Order 0 (scipy mode 'nearest'): `floor(cc + 0.5)` clamped to the line.
    static func nearest(n: Int, m: Int) -> [Int] {
        let step = Double(n) / Double(m)
        return (0..<m).map { o in
            let i = Int((coordinate(o, step: step) + 0.5).rounded(.down))
            return min(max(i, 0), n - 1)
        }
    }

    /// Order 1: the two clamped taps and weights `1 - t`, `1 - (1 - t)` of each output index.
    struct Linear {
        var i0: [Int], i1: [Int], w0: [Double], w1: [Double]
        init(n: Int, m: Int) {
            let step = Double(n) / Double(m)
            i0 = []; i1 = []; w0 = []; w1 = []
            i0.reserveCapacity(m); i1.reserveCapacity(m); w0.reserveCapacity(m); w1.reserveCapacity(m)
            for o in 0..<m {
                let cc = coordinate(o, step: step)
                let f = cc.rounded(.down)
                let start = Int(f)
                let a = 1.0 - (cc - f)
                i0.append(min(max(start, 0), n - 1))
                i1.append(min(max(start + 1, 0), n - 1))
                w0.append(a)
                w1.append(1.0 - a)
            }
        }
    }

    /// Order 3 on a line pre-padded by `BSpline.pad` samples each side (scipy pads 'nearest' by
    /// 12 before prefiltering): first tap (in padded coordinates, clamped later) and four weights.
    struct Cubic {
        var start: [Int], w: [Double]   // w: 4 per output
        init(n: Int, m: Int) {
            let step = Double(n) / Double(m)
            start = []; w = []
            start.reserveCapacity(m); w.reserveCapacity(4 * m)
            for o in 0..<m {
                var cc = coordinate(o, step: step)
                cc += Double(BSpline.pad)
                let f = cc.rounded(.down)
                start.append(Int(f) - 1)
                let x = cc - f, z = 1.0 - x
                let w1 = (x * x * (x - 2.0) * 3.0 + 4.0) / 6.0
                let w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0
                let w0 = z * z * z / 6.0
                var w3 = 1.0
                w3 -= w0; w3 -= w1; w3 -= w2
                w.append(contentsOf: [w0, w1, w2, w3])
            }
        }
    }
}
