import MedprepCore

/// One-axis resampling passes over float data viewed as `[outer][n][inner]` (`inner` = the
/// contiguous stride of the axis: 1 for x, `nx * channels` for y...). Resampling is separable, so a
/// volume is resampled one axis at a time. For `inner > 1` the taps are whole contiguous rows,
/// so the inner loops are plain vector loops; no pass allocates per element.
/// Every output value is computed by the same arithmetic whatever the split into tasks, so the
/// bytes do not depend on the thread count.
enum ResampleKernels {
    enum Kind { case linear, cubic }

    static func pass(_ kind: Kind, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                     outer: Int, n: Int, m: Int, inner: Int, threads: Int) {
        switch kind {
        case .linear: linear(src: src, dst: dst, outer: outer, n: n, m: m, inner: inner, threads: threads)
        case .cubic: cubic(src: src, dst: dst, outer: outer, n: n, m: m, inner: inner, threads: threads)
        }
    }

    /// Resamples a `[Float]` grid along the axes where `outputDims` differs, x then y then z.
    /// `dims` and `outputDims` have 3 sizes; `channels` values per voxel are never mixed.
    static func resample(_ voxels: [Float], dims: [Int], outputDims: [Int], channels: Int,
                         kind: Kind, threads: Int) -> [Float] {
        var cur = voxels
        var d = dims
        for axis in 0..<3 where outputDims[axis] != d[axis] {
            let inner = channels * d[0..<axis].reduce(1, *)
            let outer = d[(axis + 1)...].reduce(1, *)
            let n = d[axis], m = outputDims[axis]
            let next: [Float] = HugePages.array(count: outer * m * inner) { out in
                cur.withUnsafeBufferPointer { src in
                    pass(kind, src: src.baseAddress!, dst: out.baseAddress!, outer: outer, n: n, m: m, inner: inner, threads: threads)
                }
            }
            cur = next
            d[axis] = m
        }
        return cur
    }

    // MARK: - linear

    static func linear(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                       outer: Int, n: Int, m: Int, inner: Int, threads: Int) {
        let t = ResampleTables.Linear(n: n, m: m)
        let w0 = t.w0.map { Float($0) }, w1 = t.w1.map { Float($0) }
        let tab = UnsafeSendable((t.i0, t.i1, w0, w1))
        let s = UnsafeSendable(src), d = UnsafeSendable(dst)
        if inner == 1 {
            let linesPerTask = max(1, 16384 / max(m, 1))
            let tasks = (outer + linesPerTask - 1) / linesPerTask
            parallelFor(tasks, threads: threads) { task in
                let (i0, i1, w0, w1) = tab.value
                i0.withUnsafeBufferPointer { i0 in i1.withUnsafeBufferPointer { i1 in
                w0.withUnsafeBufferPointer { w0 in w1.withUnsafeBufferPointer { w1 in
                    for line in (task * linesPerTask)..<min(outer, (task + 1) * linesPerTask) {
                        let a = s.value + line * n, o = d.value + line * m
                        for k in 0..<m { o[k] = w0[k] * a[i0[k]] + w1[k] * a[i1[k]] }
                    }
                } } } }
            }
        } else {
            let rows = outer * m
            let rowsPerTask = max(1, 16384 / inner)
            let tasks = (rows + rowsPerTask - 1) / rowsPerTask
            parallelFor(tasks, threads: threads) { task in
                let (i0, i1, w0, w1) = tab.value
                for r in (task * rowsPerTask)..<min(rows, (task + 1) * rowsPerTask) {
                    let o = r / m, k = r % m
                    let a = s.value + (o * n + i0[k]) * inner, b = s.value + (o * n + i1[k]) * inner
                    let out = d.value + r * inner
                    let p = w0[k], q = w1[k]
                    for j in 0..<inner { out[j] = p * a[j] + q * b[j] }
                }
            }
        }
    }

    // MARK: - cubic B-spline

    static func cubic(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                      outer: Int, n: Int, m: Int, inner: Int, threads: Int) {
        let t = ResampleTables.Cubic(n: n, m: m)
        let np = n + 2 * BSpline.pad
        // Padded tap indices, clamped as scipy's 'nearest' edge offsets.
        var taps = [Int](repeating: 0, count: 4 * m)
        for k in 0..<m { for h in 0..<4 { taps[4 * k + h] = min(max(t.start[k] + h, 0), np - 1) } }
        let tab = UnsafeSendable((taps, t.w))
        let s = UnsafeSendable(src), d = UnsafeSendable(dst)
        if inner == 1 {
            let linesPerTask = max(1, 8192 / max(np, 1))
            let tasks = (outer + linesPerTask - 1) / linesPerTask
            parallelFor(tasks, threads: threads) { task in
                let (taps, w) = tab.value
                var c = [Double](repeating: 0, count: np)
                c.withUnsafeMutableBufferPointer { cb in
                    let c = cb.baseAddress!
                    for line in (task * linesPerTask)..<min(outer, (task + 1) * linesPerTask) {
                        let a = s.value + line * n, o = d.value + line * m
                        for p in 0..<np { c[p] = Double(a[min(max(p - BSpline.pad, 0), n - 1)]) }
                        BSpline.filterLine(c, np)
                        for k in 0..<m {
                            var v = 0.0
                            for h in 0..<4 { v += c[taps[4 * k + h]] * w[4 * k + h] }
                            o[k] = Float(v)
                        }
                    }
                }
            }
        } else {
            let width = min(inner, 128)
            let chunks = (inner + width - 1) / width
            parallelFor(outer * chunks, threads: threads) { task in
                let (taps, w) = tab.value
                let o = task / chunks, j0 = (task % chunks) * width
                let cw = min(width, inner - j0)
                var panel = [Double](repeating: 0, count: np * cw + cw)
                panel.withUnsafeMutableBufferPointer { pb in
                    let c = pb.baseAddress!, scratch = c + np * cw
                    for p in 0..<np {
                        let row = s.value + (o * n + min(max(p - BSpline.pad, 0), n - 1)) * inner + j0
                        let crow = c + p * cw
                        for j in 0..<cw { crow[j] = Double(row[j]) }
                    }
                    BSpline.filterPanel(c, np, cw, scratch: scratch)
                    for k in 0..<m {
                        let out = d.value + (o * m + k) * inner + j0
                        let r0 = c + taps[4 * k] * cw, r1 = c + taps[4 * k + 1] * cw
                        let r2 = c + taps[4 * k + 2] * cw, r3 = c + taps[4 * k + 3] * cw
                        let a0 = w[4 * k], a1 = w[4 * k + 1], a2 = w[4 * k + 2], a3 = w[4 * k + 3]
                        for j in 0..<cw {
                            var v = 0.0
                            v += r0[j] * a0; v += r1[j] * a1; v += r2[j] * a2; v += r3[j] * a3
                            out[j] = Float(v)
                        }
                    }
                }
            }
        }
    }
}
