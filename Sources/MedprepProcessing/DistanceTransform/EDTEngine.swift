import MedprepCore

/// A value that crosses into `parallelFor` workers. Only used for buffers whose workers write
/// disjoint index ranges, so sharing is safe.
struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Splits `0..<count` into at most `threads` contiguous ranges (fixed by index, never by timing)
/// and runs `body` on each, one range per worker, so per-worker scratch is allocated once.
func parallelChunks(_ count: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let t = max(1, min(threads, count))
    if t == 1 { body(0..<count); return }
    parallelFor(t, threads: t) { w in body((count * w / t)..<(count * (w + 1) / t)) }
}

/// The exact, separable, linear-time Euclidean distance transform.
///
/// For every voxel it finds the squared distance to the nearest voxel whose *key* differs from
/// its own. With keys = a binary mask that is both scipy's `distance_transform_edt(mask)` (inside)
/// and `distance_transform_edt(~mask)` (outside) in one pass; with keys = labels it is the
/// multi-label transform (every voxel's distance to the nearest voxel of another label).
///
/// Algorithm: the first pass (along x) measures, in each row, the distance to the ends of the
/// run of equal keys the voxel sits in. Each later pass (y, then z) takes, for every line, the
/// lower envelope of the parabolas g(i) + (x - x_i)^2 (Felzenszwalb & Huttenlocher 2012, with
/// Maurer et al. 2003's division-free removal test), separately for each run of equal keys along
/// the line, plus one parabola with g = 0 at each voxel just outside the run (a voxel of another
/// key, the nearest one along this line). Voxels further along the line cannot be nearer: any of
/// them is either of another key and further than the run's neighbour, or of this key and at
/// least as far as the neighbour on the line alone. Comparisons are made in Double; intermediate
/// squared distances are stored as Float (integer squared distances below 2^24 are exact).
///
/// Strided passes work on tiles of 16 adjacent lines copied into a contiguous scratch buffer, so
/// memory is read a cache line at a time. Every line is computed by the same code whatever
/// thread runs it: the output does not depend on the thread count.
enum EDTEngine {
    static let tile = 16

    /// Squared distances (units of `spacing`) to the nearest voxel with a different key; +inf
    /// where every key on the grid is equal.
    static func squaredDistances<Key: FixedWidthInteger>(
        keys: UnsafePointer<Key>, dims: [Int], spacing: [Double],
        out: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let nx = dims[0], ny = dims[1], nz = dims[2]
        let k = SendableBox(keys), o = SendableBox(out)
        let rows = ny * nz
        let T0 = _now()
        // Pass 1: along x, rows are contiguous.
        parallelChunks(rows, threads: threads) { range in
            rowPass(keys: k.value, out: o.value, nx: nx, rows: range, s: spacing[0])
        }
        let T1 = _now()
        // Pass 2: along y (stride nx), one line per (x, z).
        if ny > 1 {
            stridedPass(keys: keys, out: out, nx: nx, n: ny, stride: nx,
                        outerCount: nz, outerStride: nx * ny, s: spacing[1], threads: threads)
        }
        let T2 = _now()
        // Pass 3: along z (stride nx*ny), one line per (x, y).
        if nz > 1 {
            stridedPass(keys: keys, out: out, nx: nx, n: nz, stride: nx * ny,
                        outerCount: ny, outerStride: nx, s: spacing[2], threads: threads)
        }
        let T3 = _now()
        if getenv("MP_EDT_TIMING") != nil { print("EDT pass1 \(T1-T0) pass2 \(T2-T1) pass3 \(T3-T2)") }
    }

    /// First pass: for each voxel, the squared distance along its row to the nearest voxel of
    /// another key (the neighbours just outside its run).
    @inline(__always)
    static func rowPass<Key: FixedWidthInteger>(
        keys: UnsafePointer<Key>, out: UnsafeMutablePointer<Float>, nx: Int, rows: Range<Int>, s: Double
    ) {
        for r in rows {
            let kp = keys + r * nx, op = out + r * nx
            var a = 0
            while a < nx {
                let key = kp[a]
                var b = a
                while b + 1 < nx && kp[b + 1] == key { b += 1 }
                let hasL = a > 0, hasR = b < nx - 1
                if hasL && hasR {
                    for q in a...b {
                        let d = Double(Swift.min(q - a + 1, b + 1 - q)) * s
                        op[q] = Float(d * d)
                    }
                } else if hasL {
                    for q in a...b { let d = Double(q - a + 1) * s; op[q] = Float(d * d) }
                } else if hasR {
                    for q in a...b { let d = Double(b + 1 - q) * s; op[q] = Float(d * d) }
                } else {
                    for q in a...b { op[q] = .infinity }
                }
                a = b + 1
            }
        }
    }

    /// A pass along a strided axis: tiles of up to 16 lines adjacent in x are gathered into a
    /// contiguous buffer (one line after another), transformed, and scattered back.
    static func stridedPass<Key: FixedWidthInteger>(
        keys: UnsafePointer<Key>, out: UnsafeMutablePointer<Float>, nx: Int, n: Int, stride: Int,
        outerCount: Int, outerStride: Int, s: Double, threads: Int
    ) {
        let xBlocks = (nx + tile - 1) / tile
        let k = SendableBox(keys), o = SendableBox(out)
        parallelChunks(outerCount * xBlocks, threads: threads) { range in
            let keys = k.value, out = o.value
            let g = UnsafeMutablePointer<Float>.allocate(capacity: tile * n)
            let kb = UnsafeMutablePointer<Key>.allocate(capacity: tile * n)
            let vx = UnsafeMutablePointer<Double>.allocate(capacity: n + 2)
            let vg = UnsafeMutablePointer<Double>.allocate(capacity: n + 2)
            defer { g.deallocate(); kb.deallocate(); vx.deallocate(); vg.deallocate() }
            for t in range {
                let outer = t / xBlocks, x0 = (t % xBlocks) * tile
                let w = Swift.min(tile, nx - x0)
                let base = outer * outerStride + x0
                for i in 0..<n {
                    let src = base + i * stride
                    for b in 0..<w {
                        g[b * n + i] = out[src + b]
                        kb[b * n + i] = keys[src + b]
                    }
                }
                for b in 0..<w {
                    envelope(g: g + b * n, keys: kb + b * n, n: n, s: s, vx: vx, vg: vg)
                }
                for i in 0..<n {
                    let dst = base + i * stride
                    for b in 0..<w { out[dst + b] = g[b * n + i] }
                }
            }
        }
    }

    /// One line, in place: for each run of equal keys, the lower envelope of the run's finite
    /// parabolas plus zero-height parabolas at the voxels just outside the run.
    @inline(__always)
    static func envelope<Key: FixedWidthInteger>(
        g: UnsafeMutablePointer<Float>, keys: UnsafePointer<Key>, n: Int, s: Double,
        vx: UnsafeMutablePointer<Double>, vg: UnsafeMutablePointer<Double>
    ) {
        var a = 0
        while a < n {
            let key = keys[a]
            var b = a
            while b + 1 < n && keys[b + 1] == key { b += 1 }
            // Build the envelope of the run [a, b] (vertices sorted by position).
            var cnt = 0
            @inline(__always) func push(_ x: Double, _ d: Double) {
                while cnt >= 2 {
                    // Maurer's test: the middle parabola is nowhere strictly lowest.
                    let x1 = vx[cnt - 2], x2 = vx[cnt - 1]
                    let aa = x2 - x1, bb = x - x2, cc = x - x1
                    if cc * vg[cnt - 1] - bb * vg[cnt - 2] - aa * d - aa * bb * cc > 0 {
                        cnt -= 1
                    } else {
                        break
                    }
                }
                vx[cnt] = x
                vg[cnt] = d
                cnt += 1
            }
            if a > 0 { push(Double(a - 1) * s, 0) }
            for i in a...b {
                let gi = g[i]
                if gi < .infinity { push(Double(i) * s, Double(gi)) }
            }
            if b < n - 1 { push(Double(b + 1) * s, 0) }
            if cnt == 0 {
                for q in a...b { g[q] = .infinity }
            } else {
                var l = 0
                let last = cnt - 1
                for q in a...b {
                    let xq = Double(q) * s
                    var dx = vx[l] - xq
                    var d1 = vg[l] + dx * dx
                    while l < last {
                        dx = vx[l + 1] - xq
                        let d2 = vg[l + 1] + dx * dx
                        if d1 <= d2 { break }
                        l += 1
                        d1 = d2
                    }
                    g[q] = Float(d1)
                }
            }
            a = b + 1
        }
    }
}

import Glibc
func _now() -> Double { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 }
