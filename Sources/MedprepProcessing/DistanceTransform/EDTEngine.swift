import MedprepCore

/// Runs `body` over `0..<count` split into contiguous ranges (fixed by index, never by timing) on
/// at most `threads` threads. With more than one thread the ranges are up to 8 per thread, handed
/// to whichever worker is free: work per item is uneven (classes sit in parts of the volume), and
/// one range per worker left a thread idle. Every item is computed by the same code whatever
/// thread takes it, so results do not depend on the thread count; `body` allocates its scratch
/// once per range.
func parallelChunks(_ count: Int, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let t = max(1, min(threads, count))
    if t == 1 { body(0..<count); return }
    let pieces = min(count, t * 8)
    let next = PieceCounter()
    parallelFor(t, threads: t) { _ in
        while let p = next.take(below: pieces) {
            body((count * p / pieces)..<(count * (p + 1) / pieces))
        }
    }
}

/// `parallelChunks` over the elements 0..<n in blocks of `block`: `body` gets element ranges.
func parallelRanges(_ n: Int, block: Int = 65536, threads: Int, _ body: @Sendable (Range<Int>) -> Void) {
    parallelChunks((n + block - 1) / block, threads: threads) { r in
        body((r.lowerBound * block)..<Swift.min(r.upperBound * block, n))
    }
}

/// Hands out 0, 1, 2, ... to concurrent workers.
final class PieceCounter: @unchecked Sendable {
    private let lock = NSLockLite()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.locked {
            guard value < limit else { return nil }
            value += 1
            return value - 1
        }
    }
}

/// What the last pass writes for each voxel, from its squared distance d².
enum FinalMode<Key: FixedWidthInteger & Sendable>: Sendable {
    /// d² (units of spacing squared).
    case squared
    /// d.
    case distance
    /// Voxels whose key is `insideKey`: offset − d; the others: d. (Boundary SDF with offset h,
    /// plain SDF with offset 0, when the keys are a binary class mask.)
    case signed(insideKey: Key, offset: Double)
}

/// The exact, separable, linear-time Euclidean distance transform.
///
/// For every voxel it finds the distance to the nearest voxel whose *key* differs from its own.
/// With keys = a binary mask that is both scipy's `distance_transform_edt(mask)` (inside) and
/// `distance_transform_edt(~mask)` (outside) in one pass; with keys = labels it is the multi-label
/// transform (every voxel's distance to the nearest voxel of another label).
///
/// Algorithm:
/// 1. Along the slowest axis with more than one voxel (z in 3D, y in 2D), each voxel gets the
///    distance along its line to the nearest voxel of another key, i.e. to the ends of the run of
///    equal keys it sits in. This runs as two streaming sweeps (forward, backward) over whole
///    planes, so memory is read contiguously.
/// 2. Each remaining axis (y, then x) takes, for every line, the lower envelope of the parabolas
///    g(i) + (x − x_i)² (Felzenszwalb & Huttenlocher 2012, with Maurer et al. 2003's
///    division-free test for discarding a parabola), separately for each run of equal keys along
///    the line, plus one parabola with g = 0 at each voxel just outside the run (a voxel of
///    another key, the nearest one on this line). Voxels further along the line cannot be nearer:
///    any of them is either of another key and further than the run's neighbour, or of this key
///    and at least as far as the neighbour on the line alone.
///    The y pass copies tiles of 16 adjacent lines into a contiguous buffer; the x pass, last,
///    works in place on contiguous rows and writes the final values (`FinalMode`) directly.
///
/// Comparisons are made in Double; intermediate squared distances are stored as Float (integer
/// squared distances below 2^24 are exact). Every line is computed by the same code whatever
/// thread runs it, so the output does not depend on the thread count.
enum EDTEngine {
    static let tile = 16

    /// Runs the transform. `scratch` (N floats) holds intermediate squared distances; the last
    /// pass writes `final` values into `dst` (which may be `scratch`). Voxels with no other key
    /// on the whole grid get d = +inf. With `skipKey`, the envelope passes leave runs of that key
    /// alone (their voxels keep intermediate values): for callers that need only the other voxels.
    static func transform<Key: FixedWidthInteger & Sendable>(
        keys: UnsafePointer<Key>, dims: [Int], spacing: [Double],
        scratch: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>,
        final: FinalMode<Key>, skipKey: Key? = nil, threads: Int
    ) {
        let active = (0..<3).filter { dims[$0] > 1 }
        guard let scanAxis = active.last else {
            dst[0] = finalize(.infinity, key: keys[0], final)
            return
        }
        let envelopeAxes = Array(active.dropLast().reversed())  // y then x
        let uniformLines = scan(keys: keys, dims: dims, axis: scanAxis, s: spacing[scanAxis], scratch: scratch,
                                threads: threads)
        if envelopeAxes.isEmpty {
            // 1D (or one long axis): the scan was the only pass.
            let N = dims[0] * dims[1] * dims[2]
            for i in 0..<N { dst[i] = finalize(Double(scratch[i]), key: keys[i], final) }
            return
        }
        for (n, axis) in envelopeAxes.enumerated() {
            let isLast = n == envelopeAxes.count - 1
            if axis == 0 {
                rowPass(keys: keys, dims: dims, s: spacing[0], src: scratch, dst: isLast ? dst : scratch,
                        final: isLast ? final : .squared, skipKey: skipKey, threads: threads)
            } else {
                // y after a z scan: a y-line (x, z) whose whole x-plane has one key is still all
                // +inf after the scan and stays so: such tiles are skipped (unless this is the
                // last pass, which must write dst).
                var skipX: [Bool]? = nil
                if axis == 1 && scanAxis == 2 && !isLast {
                    skipX = uniformPlanes(keys: keys, dims: dims, uniformColumns: uniformLines)
                }
                tiledPass(keys: keys, dims: dims, axis: axis, s: spacing[axis], src: scratch,
                          dst: isLast ? dst : scratch, final: isLast ? final : .squared, skipKey: skipKey, skipX: skipX,
                          threads: threads)
            }
        }
    }

    /// For each x: true when every voxel of the y-z plane at x has the same key.
    static func uniformPlanes<Key: FixedWidthInteger>(keys: UnsafePointer<Key>, dims: [Int],
                                                      uniformColumns: [Bool]) -> [Bool] {
        let nx = dims[0], ny = dims[1]
        var out = [Bool](repeating: true, count: nx)
        for y in 0..<ny {
            for x in 0..<nx where out[x] {
                if !uniformColumns[y * nx + x] || keys[y * nx + x] != keys[x] { out[x] = false }
            }
        }
        return out
    }

    /// Squared distances to the nearest voxel with a different key (+inf where none).
    static func squaredDistances<Key: FixedWidthInteger & Sendable>(
        keys: UnsafePointer<Key>, dims: [Int], spacing: [Double],
        out: UnsafeMutablePointer<Float>, threads: Int
    ) {
        transform(keys: keys, dims: dims, spacing: spacing, scratch: out, dst: out, final: .squared, threads: threads)
    }

    @inline(__always)
    static func finalize<Key: FixedWidthInteger>(_ d2: Double, key: Key, _ final: FinalMode<Key>) -> Float {
        switch final {
        case .squared: return Float(d2)
        case .distance: return Float(d2.squareRoot())
        case .signed(let inside, let offset):
            let d = d2.squareRoot()
            return key == inside ? Float(offset - d) : Float(d)
        }
    }

    /// Pass 1, along `axis` (the slowest axis with more than one voxel, so every line starts in
    /// the first plane): for each voxel, the distance along its line to the nearest voxel of
    /// another key. Forward sweep: steps since the last key change (+inf before the first one),
    /// written straight into `scratch`; backward sweep: steps to the next change, kept for one
    /// plane, and the smaller of the two squared. Both sweep whole planes with branch-free,
    /// vectorisable selects (steps are small integers, exact in Float).
    /// Writes squared distances to `scratch`; returns, per line (index within a plane), whether
    /// its keys are all equal.
    static func scan<Key: FixedWidthInteger & Sendable>(
        keys: UnsafePointer<Key>, dims: [Int], axis: Int, s: Double,
        scratch: UnsafeMutablePointer<Float>, threads: Int
    ) -> [Bool] {
        let n = dims[axis]
        let stride = (0..<axis).reduce(1) { $0 * dims[$1] }
        var uniform = [Bool](repeating: false, count: stride)
        let k = UnsafeSendable(keys), sc = UnsafeSendable(scratch)
        let block = 2048
        let blocks = (stride + block - 1) / block
        let sf = Float(s)
        uniform.withUnsafeMutableBufferPointer { ub in
            let u = UnsafeSendable(ub.baseAddress!)
            parallelChunks(blocks, threads: threads) { range in
                let keys = k.value, scratch = sc.value
                let j0 = range.lowerBound * block, j1 = Swift.min(range.upperBound * block, stride)
                let w = j1 - j0
                // One plane of step counts per sweep (a separate buffer, so the loops vectorise: the
                // compiler cannot tell that two rows of `scratch` do not overlap).
                let next = UnsafeMutablePointer<Float>.allocate(capacity: w)
                defer { next.deallocate() }
                next.update(repeating: .infinity, count: w)
                (scratch + j0).update(repeating: .infinity, count: w)
                var i = 1
                while i < n {
                    let row = keys + (i &* stride &+ j0), o = scratch + (i &* stride &+ j0)
                    let prev = row - stride
                    var j = 0
                    while j < w {
                        let up = next[j] + 1
                        let v = row[j] == prev[j] ? up : 1
                        next[j] = v
                        o[j] = v
                        j &+= 1
                    }
                    i &+= 1
                }
                next.update(repeating: .infinity, count: w)
                i = n &- 1
                while i >= 0 {
                    let row = keys + (i &* stride &+ j0), o = scratch + (i &* stride &+ j0)
                    if i < n &- 1 {
                        let below = row + stride
                        var j = 0
                        while j < w {
                            let down = next[j] + 1
                            next[j] = row[j] == below[j] ? down : 1
                            j &+= 1
                        }
                    }
                    var j = 0
                    while j < w {
                        let f = o[j], b = next[j]
                        let d = (f < b ? f : b) * sf
                        o[j] = d * d
                        j &+= 1
                    }
                    i &-= 1
                }
                // After the backward sweep, next[j] is the distance from voxel 0 to the first change.
                for j in 0..<w { u.value[j0 + j] = next[j] == .infinity }
            }
        }
        return uniform
    }

    /// The x pass, in place on contiguous rows (src and dst rows may be the same memory).
    static func rowPass<Key: FixedWidthInteger & Sendable>(
        keys: UnsafePointer<Key>, dims: [Int], s: Double,
        src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>, final: FinalMode<Key>, skipKey: Key?,
        threads: Int
    ) {
        let nx = dims[0], rows = dims[1] * dims[2]
        let k = UnsafeSendable(keys), sr = UnsafeSendable(src), ds = UnsafeSendable(dst)
        parallelChunks(rows, threads: threads) { range in
            let scratch = LineScratch(n: nx)
            defer { scratch.deallocate() }
            for r in range {
                envelope(src: sr.value + r * nx, dst: ds.value + r * nx, keys: k.value + r * nx, n: nx, s: s,
                         scratch: scratch, final: final, skipKey: skipKey)
            }
        }
    }

    /// A pass along a strided axis: tiles of up to 16 lines adjacent in x are gathered into a
    /// contiguous buffer (one line after another), transformed, and scattered back.
    static func tiledPass<Key: FixedWidthInteger & Sendable>(
        keys: UnsafePointer<Key>, dims: [Int], axis: Int, s: Double,
        src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>, final: FinalMode<Key>, skipKey: Key?,
        skipX: [Bool]?,
        threads: Int
    ) {
        let nx = dims[0], n = dims[axis]
        let xBlocks = (nx + tile - 1) / tile
        // Tiles of x blocks whose planes are all uniform need no work.
        let skipBlock: [Bool] = (0..<xBlocks).map { b in
            guard let skipX else { return false }
            return (b * tile..<Swift.min(nx, (b + 1) * tile)).allSatisfy { skipX[$0] }
        }
        let stride = (0..<axis).reduce(1) { $0 * dims[$1] }
        let outerCount = ((axis + 1)..<3).reduce(1) { $0 * dims[$1] } * (stride / nx)
        // Lines: x in 0..<nx, "outer" enumerating the other axes (all but x and `axis`).
        let innerPlanes = stride / nx  // axes between x and `axis` (y when axis = z)
        let k = UnsafeSendable(keys), sr = UnsafeSendable(src), ds = UnsafeSendable(dst)
        parallelChunks(outerCount * xBlocks, threads: threads) { range in
            let keys = k.value, src = sr.value, dst = ds.value
            let g = UnsafeMutablePointer<Float>.allocate(capacity: tile * n)
            let kb = UnsafeMutablePointer<Key>.allocate(capacity: tile * n)
            let scratch = LineScratch(n: n)
            defer { g.deallocate(); kb.deallocate(); scratch.deallocate() }
            for t in range where !skipBlock[t % xBlocks] {
                let outer = t / xBlocks, x0 = (t % xBlocks) * tile
                let w = Swift.min(tile, nx - x0)
                let base = (outer / innerPlanes) * stride * n + (outer % innerPlanes) * nx + x0
                for i in 0..<n {
                    let p = base + i * stride
                    for b in 0..<w {
                        g[b * n + i] = src[p + b]
                        kb[b * n + i] = keys[p + b]
                    }
                }
                for b in 0..<w {
                    envelope(src: g + b * n, dst: g + b * n, keys: kb + b * n, n: n, s: s, scratch: scratch, final: final,
                             skipKey: skipKey)
                }
                for i in 0..<n {
                    let p = base + i * stride
                    for b in 0..<w { dst[p + b] = g[b * n + i] }
                }
            }
        }
    }

    /// Last index of the run of keys equal to keys[a]; byte keys are compared eight at a time.
    @inline(__always)
    static func runEnd<Key: FixedWidthInteger>(_ keys: UnsafePointer<Key>, from a: Int, n: Int) -> Int {
        let key = keys[a]
        var b = a
        if Key.bitWidth == 8 {
            let raw = UnsafeRawPointer(keys)
            let pattern = UInt64(truncatingIfNeeded: key) &* 0x0101_0101_0101_0101
            while b &+ 9 <= n {
                let word = raw.loadUnaligned(fromByteOffset: b &+ 1, as: UInt64.self) ^ pattern
                if word != 0 { return b &+ (word.littleEndian.trailingZeroBitCount >> 3) }
                b &+= 8
            }
        }
        while b + 1 < n && keys[b + 1] == key { b += 1 }
        return b
    }

    /// Per-worker buffers of `envelope` for lines of up to `n` voxels.
    struct LineScratch {
        /// Envelope vertices: position and F = g + x² (the parabolas as lines in x, see `envelope`).
        let vx: UnsafeMutablePointer<Double>
        let vf: UnsafeMutablePointer<Double>
        /// Per voxel of a run: the index of the vertex that starts there (0 where none does).
        let owner: UnsafeMutablePointer<Int32>
        /// The vertices again for writing out: voxel index and height g in float.
        let index: UnsafeMutablePointer<Int32>
        let height: UnsafeMutablePointer<Float>
        /// Each vertex's first voxel, relative to the run.
        let start: UnsafeMutablePointer<Int32>

        init(n: Int) {
            vx = .allocate(capacity: n + 2)
            vf = .allocate(capacity: n + 2)
            owner = .allocate(capacity: n + 2)
            index = .allocate(capacity: n + 2)
            height = .allocate(capacity: n + 2)
            start = .allocate(capacity: n + 3)
        }

        func deallocate() {
            vx.deallocate(); vf.deallocate(); owner.deallocate(); index.deallocate(); height.deallocate()
            start.deallocate()
        }
    }

    /// One line: for each run of equal keys, the lower envelope of the run's finite parabolas plus
    /// zero-height parabolas at the voxels just outside the run. Reads `src`, writes `dst` (the
    /// same memory is fine: a run is read completely before it is written).
    ///
    /// The parabola g + (t − x)² is F − 2xt + t² with F = g + x²: the envelope is the lower
    /// envelope of the lines F − 2xt (the convex-hull test below keeps a line only while it is
    /// strictly lowest somewhere; ties are dropped, which changes no value). Writing it out: each
    /// vertex starts one voxel past where it crosses its predecessor. Long segments are filled
    /// one by one (vectorised loops); short ones through `owner`, where the starts are scattered
    /// and a running maximum gives every voxel its vertex with no data-dependent branch. The
    /// square root and sign go in a separate loop that vectorises. Runs of `skipKey` are left
    /// untouched.
    @inline(__always)
    static func envelope<Key: FixedWidthInteger>(
        src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>, keys: UnsafePointer<Key>, n: Int, s: Double,
        scratch: LineScratch, final: FinalMode<Key>, skipKey: Key? = nil
    ) {
        var mode = 0, insideKey: Key = 0, offset = 0.0
        switch final {
        case .squared: mode = 0
        case .distance: mode = 1
        case .signed(let k, let o): mode = 2; insideKey = k; offset = o
        }
        let vx = scratch.vx, vf = scratch.vf, owner = scratch.owner
        var a = 0
        while a < n {
            let key = keys[a]
            let b = runEnd(keys, from: a, n: n)
            if key == skipKey { a = b + 1; continue }
            // Envelope of the run [a, b]: vertices sorted by position; the last two are kept in
            // registers (x1, f1) and (x2, f2), earlier ones in vx/vf[0..<cnt-2].
            var cnt = 0
            var x1 = 0.0, f1 = 0.0, x2 = 0.0, f2 = 0.0
            @inline(__always) func push(_ x: Double, _ g: Double) {
                let f = g + x * x
                while cnt >= 2 {
                    // The middle line (x2, f2) is never strictly lowest: the new line crosses the
                    // first one no later than the middle one does.
                    if (f - f1) * (x2 - x1) <= (f2 - f1) * (x - x1) {
                        cnt &-= 1
                        x2 = x1; f2 = f1
                        if cnt >= 2 { x1 = vx[cnt &- 2]; f1 = vf[cnt &- 2] }
                    } else {
                        break
                    }
                }
                if cnt >= 2 { vx[cnt &- 2] = x1; vf[cnt &- 2] = f1 }
                x1 = x2; f1 = f2
                x2 = x; f2 = f
                cnt &+= 1
            }
            if a > 0 { push(Double(a - 1) * s, 0) }
            var x = Double(a) * s
            for i in a...b {
                let gi = src[i]
                if gi < .infinity { push(x, Double(gi)) }
                x += s
            }
            if b < n - 1 { push(Double(b + 1) * s, 0) }
            let inside = mode == 2 && key == insideKey
            let sign: Float = inside ? -1 : 1
            let off: Float = inside ? Float(offset) : 0
            let len = b - a + 1
            let out = dst + a
            if cnt == 0 {
                let v: Float = mode == 0 ? .infinity : off + sign * .infinity
                for q in 0..<len { out[q] = v }
                a = b + 1
                continue
            }
            if cnt >= 2 { vx[cnt - 2] = x1; vf[cnt - 2] = f1 }
            vx[cnt - 1] = x2; vf[cnt - 1] = f2
            // Vertex l (l ≥ 1) is strictly lower than vertex l − 1 beyond their crossing t (index
            // units), so it starts at floor(t) + 1, clamped to the run (`start`, relative to a);
            // vertices that start where a later one does own no voxel. Vertices are kept as
            // (voxel index, g): each voxel then costs an integer difference and two float
            // operations (g + (Δi·s)², exact in px).
            let vindex = scratch.index, vheight = scratch.height, start = scratch.start
            let lo = Double(a), hi = Double(b + 1)
            start[0] = 0
            var l = 1
            while l < cnt {
                let u = vx[l - 1], v = vx[l]
                var t = (vf[l] - vf[l - 1]) / (2 * s * (v - u)) + 1
                t = t < lo ? lo : t
                t = t > hi ? hi : t
                start[l] = Int32(truncatingIfNeeded: Int(t) &- a)  // t ≥ 0: truncation is floor
                l &+= 1
            }
            start[cnt] = Int32(truncatingIfNeeded: len)
            l = 0
            while l < cnt {
                let x = vx[l]
                vindex[l] = Int32(truncatingIfNeeded: Int(x / s + 0.5))  // x ≥ 0
                vheight[l] = Float(vf[l] - x * x)
                l &+= 1
            }
            let sf = Float(s)
            var q = 0
            if len >= 8 &* cnt {
                // Long segments: each filled by its own loop, which vectorises.
                l = 0
                while l < cnt {
                    let from = Int(start[l]), to = Int(start[l &+ 1])
                    if to > from {
                        let x0 = vindex[l], g = vheight[l]
                        var i = from
                        while i < to {
                            let dx = Float(Int32(truncatingIfNeeded: i &+ a) &- x0) * sf
                            out[i] = g + dx * dx
                            i &+= 1
                        }
                    }
                    l &+= 1
                }
            } else {
                // Short segments: every voxel finds its vertex without a data-dependent branch
                // (starts scattered into `owner`, later ones overwriting, then a running maximum).
                while q <= len { owner[q] = 0; q &+= 1 }
                l = 1
                while l < cnt { owner[Int(start[l])] = Int32(truncatingIfNeeded: l); l &+= 1 }
                var m: Int32 = 0
                q = 0
                while q < len {
                    let o = owner[q]
                    m = o > m ? o : m
                    let j = Int(m)
                    let dx = Float(Int32(truncatingIfNeeded: q &+ a) &- vindex[j]) * sf
                    out[q] = vheight[j] + dx * dx
                    q &+= 1
                }
            }
            if mode != 0 {
                q = 0
                if mode == 1 || !inside {
                    while q < len { out[q] = out[q].squareRoot(); q &+= 1 }
                } else {
                    while q < len { out[q] = off - out[q].squareRoot(); q &+= 1 }
                }
            }
            a = b + 1
        }
    }
}
