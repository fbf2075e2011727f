import MedprepCore

/// Interpolation for intensity images.
public enum ImageInterpolation: String, Sendable, CaseIterable, Codable {
    /// Linear per axis (trilinear), scipy `zoom(order=1, grid_mode=True, mode='nearest')`.
    case linear
    /// Cubic B-spline with its prefilter, scipy `zoom(order=3, grid_mode=True, mode='nearest')`
    /// (nnU-Net's image order). Overshoots near edges like any interpolating cubic.
    case cubic
}

/// Interpolation for label maps; neither ever invents a label value.
public enum LabelInterpolation: String, Sendable, CaseIterable, Codable {
    /// Nearest voxel, scipy `zoom(order=0, grid_mode=True, mode='nearest')`, ties included.
    case nearest
    /// Each class's indicator resampled linearly, then the class with the largest weight; ties go
    /// to the lower class (numpy `argmax`). Smoother borders than nearest (nnU-Net resamples
    /// segmentations per class in the same spirit).
    case oneHotLinear = "onehot-linear"
}

public enum Resampling {
    /// An image resampled to `target` spacing (`nil` keeps an axis). See `ResamplePlan` for sizes,
    /// alignment and the new affine.
    public static func resample(_ image: Volume3D<Float>, to target: [Double?],
                                interpolation: ImageInterpolation = .linear,
                                threads: Int = defaultThreadCount) throws -> Volume3D<Float> {
        let plan = try ResamplePlan(dims: image.dims, spacing: image.spacing, target: target)
        return try resample(image, plan: plan, interpolation: interpolation, threads: threads)
    }

    /// An image resampled to the grid of `plan` (e.g. to match another image's size).
    public static func resample(_ image: Volume3D<Float>, plan: ResamplePlan,
                                interpolation: ImageInterpolation = .linear,
                                threads: Int = defaultThreadCount) throws -> Volume3D<Float> {
        try check(plan, image.dims)
        if plan.isIdentity { return image }
        let out = ResampleKernels.resample(image.voxels, dims: image.dims, outputDims: plan.outputDims,
                                           channels: image.channels, kind: interpolation == .linear ? .linear : .cubic,
                                           threads: threads)
        return try Volume3D(voxels: out, dims: plan.outputDims, spacing: plan.outputSpacing(image.spacing),
                            channels: image.channels, affine: plan.outputAffine(image.affine))
    }

    /// A label map resampled to `target` spacing (`nil` keeps an axis).
    public static func resample(_ labels: Volume3D<UInt16>, to target: [Double?],
                                method: LabelInterpolation = .nearest,
                                threads: Int = defaultThreadCount) throws -> Volume3D<UInt16> {
        let plan = try ResamplePlan(dims: labels.dims, spacing: labels.spacing, target: target)
        return try resample(labels, plan: plan, method: method, threads: threads)
    }

    /// A label map resampled to the grid of `plan` (use the image's plan so both stay aligned).
    public static func resample(_ labels: Volume3D<UInt16>, plan: ResamplePlan,
                                method: LabelInterpolation = .nearest,
                                threads: Int = defaultThreadCount) throws -> Volume3D<UInt16> {
        try check(plan, labels.dims)
        guard labels.channels == 1 else {
            throw MedprepError(.unsupported, "a label map must have one channel, not \(labels.channels).")
        }
        if plan.isIdentity { return labels }
        let out: [UInt16]
        switch method {
        case .nearest: out = LabelResampling.nearest(labels.voxels, dims: labels.dims, outputDims: plan.outputDims, threads: threads)
        case .oneHotLinear: out = LabelResampling.oneHotLinear(labels.voxels, dims: labels.dims, outputDims: plan.outputDims, threads: threads)
        }
        return try Volume3D(voxels: out, dims: plan.outputDims, spacing: plan.outputSpacing(labels.spacing),
                            channels: 1, affine: plan.outputAffine(labels.affine))
    }

    static func check(_ plan: ResamplePlan, _ dims: [Int]) throws {
        guard plan.inputDims == dims, dims.count == 3 else {
            throw MedprepError(.mismatch, "resample plan for '\(plan.inputDims)' does not fit a volume of '\(dims)'.")
        }
    }
}

/// Label kernels. Both work on the output grid directly (not axis by axis) with per-axis tables.
enum LabelResampling {
    /// out(x, y, z) = in(ix[x], iy[y], iz[z]) with scipy's order-0 indices.
    static func nearest(_ labels: [UInt16], dims: [Int], outputDims e: [Int], threads: Int) -> [UInt16] {
        let ix = ResampleTables.nearest(n: dims[0], m: e[0])
        let iy = ResampleTables.nearest(n: dims[1], m: e[1])
        let iz = ResampleTables.nearest(n: dims[2], m: e[2])
        let nx = dims[0], nxy = dims[0] * dims[1]
        let rows = e[1] * e[2]
        let tabs = UnsafeSendable((ix, iy, iz))
        return HugePages.array(count: e[0] * rows) { out in
            labels.withUnsafeBufferPointer { src in
                let s = UnsafeSendable(src.baseAddress!), d = UnsafeSendable(out.baseAddress!)
                let rowsPerTask = max(1, 32768 / e[0])
                parallelFor((rows + rowsPerTask - 1) / rowsPerTask, threads: threads) { t in
                    let (ix, iy, iz) = tabs.value
                    for r in (t * rowsPerTask)..<min(rows, (t + 1) * rowsPerTask) {
                        let y = r % e[1], z = r / e[1]
                        let line = s.value + iz[z] * nxy + iy[y] * nx
                        let o = d.value + r * e[0]
                        for x in 0..<e[0] { o[x] = line[ix[x]] }
                    }
                }
            }
        }
    }

    /// One-hot linear then argmax. For each output voxel the 2x2x2 input neighbours are visited in
    /// scipy's order (z fastest) and each adds `(wx * wy) * wz` to its class's score; the result
    /// for a class is bit-identical to `scipy.ndimage.zoom((labels == c).astype(float), order=1,
    /// grid_mode=True, mode='nearest')` without building one volume per class. Largest score wins,
    /// ties to the lower class.
    static func oneHotLinear(_ labels: [UInt16], dims: [Int], outputDims e: [Int], threads: Int) -> [UInt16] {
        let tx = ResampleTables.Linear(n: dims[0], m: e[0])
        let ty = ResampleTables.Linear(n: dims[1], m: e[1])
        let tz = ResampleTables.Linear(n: dims[2], m: e[2])
        let nx = dims[0], nxy = dims[0] * dims[1]
        let rows = e[1] * e[2]
        let tabs = UnsafeSendable((tx, ty, tz))
        return HugePages.array(count: e[0] * rows) { out in
            labels.withUnsafeBufferPointer { src in
                let s = UnsafeSendable(src.baseAddress!), d = UnsafeSendable(out.baseAddress!)
                let rowsPerTask = max(1, 16384 / e[0])
                parallelFor((rows + rowsPerTask - 1) / rowsPerTask, threads: threads) { t in
                    let (tx, ty, tz) = tabs.value
                    let src = s.value
                    // Scratch for one voxel: the 8 corner labels and weights, then up to 8 classes.
                    let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 16)
                    let labs = UnsafeMutablePointer<UInt16>.allocate(capacity: 16)
                    defer { scratch.deallocate(); labs.deallocate() }
                    let w = scratch, score = scratch + 8, lab = labs, cls = labs + 8
                    for r in (t * rowsPerTask)..<min(rows, (t + 1) * rowsPerTask) {
                        let y = r % e[1], z = r / e[1]
                        let y0 = ty.i0[y] * nx, y1 = ty.i1[y] * nx, wy0 = ty.w0[y], wy1 = ty.w1[y]
                        let z0 = tz.i0[z] * nxy, z1 = tz.i1[z] * nxy, wz0 = tz.w0[z], wz1 = tz.w1[z]
                        let o = d.value + r * e[0]
                        for x in 0..<e[0] {
                            let x0 = tx.i0[x], x1 = tx.i1[x]
                            // scipy corner order: first array axis (x) slowest, last (z) fastest.
                            lab[0] = src[x0 + y0 + z0]; lab[1] = src[x0 + y0 + z1]
                            lab[2] = src[x0 + y1 + z0]; lab[3] = src[x0 + y1 + z1]
                            lab[4] = src[x1 + y0 + z0]; lab[5] = src[x1 + y0 + z1]
                            lab[6] = src[x1 + y1 + z0]; lab[7] = src[x1 + y1 + z1]
                            let l0 = lab[0]
                            if lab[1] == l0 && lab[2] == l0 && lab[3] == l0 && lab[4] == l0
                                && lab[5] == l0 && lab[6] == l0 && lab[7] == l0 {
                                o[x] = l0   // one class has all the weight
                                continue
                            }
                            let wx0 = tx.w0[x], wx1 = tx.w1[x]
                            let a = wx0 * wy0, b = wx0 * wy1, c = wx1 * wy0, dd = wx1 * wy1
                            w[0] = a * wz0; w[1] = a * wz1; w[2] = b * wz0; w[3] = b * wz1
                            w[4] = c * wz0; w[5] = c * wz1; w[6] = dd * wz0; w[7] = dd * wz1
                            var used = 0
                            for k in 0..<8 {
                                let l = lab[k]
                                var j = 0
                                while j < used && cls[j] != l { j += 1 }
                                if j == used { cls[j] = l; score[j] = 0; used += 1 }
                                score[j] += w[k]
                            }
                            var best = 0
                            for j in 1..<used where score[j] > score[best] || (score[j] == score[best] && cls[j] < cls[best]) { best = j }
                            o[x] = cls[best]
                        }
                    }
                }
            }
        }
    }
}
