import MedprepCore

/// Computes every requested map of one grid (a volume, or one slice) from class-index keys.
///
/// - Boundary/plain SDF when every voxel belongs to one of the classes and no class fills the grid:
///   per class, one transform of the binary mask computed on the voxels outside the class only
///   (EDT(not M)); a voxel's inside distance is then the smallest of its outside distances to the
///   other classes (the nearest voxel outside its class belongs to one of them), which also gives
///   the RRW maps. For K classes that is K − 1 grids of envelope work instead of K.
/// - Otherwise, boundary/plain SDF: per class, one two-sided transform of the binary mask gives
///   EDT(M) inside and EDT(not M) outside at once; the RRW maps reuse the inside distances.
/// - ITK SDF: per class, one transform whose features are the class's contour voxels.
/// - RRW alone (or with ITK): one multi-label transform of the class keys gives every voxel its
///   distance to the nearest voxel outside its own class, for all classes at once.
enum MapKernel {
    /// `knownCounts`: voxels per key 0...K when the caller has them. `twoSidedOnly` turns the
    /// outside-only route off (tests compare the two routes).
    static func run(keys: UnsafePointer<UInt16>, grid: MapGrid, K: Int, options: DistanceMapOptions, threads: Int,
                    sdfOut: UnsafeMutablePointer<Float>?, rrwOut: UnsafeMutablePointer<Float>?, classStride: Int,
                    counts knownCounts: [Int]? = nil, twoSidedOnly: Bool = false) {
        let N = grid.count
        let sp = options.units == .mm ? grid.spacing3 : [1, 1, 1]
        let ctx = Context(grid: grid, spacing: sp,
                          virtualAxis: options.virtualVoxelAxis == .first ? 0 : grid.rank - 1, threads: threads)
        let counts = knownCounts ?? classCounts(keys, N, K, threads: threads)

        if !twoSidedOnly, let conv = options.sdf, conv != .itk, let sdfOut, counts[K] == 0,
           counts.allSatisfy({ $0 < N }) {
            let offset = conv == .boundary ? ctx.boundaryOffset : 0
            let bin = UnsafeMutablePointer<UInt8>.allocate(capacity: N)
            defer { bin.deallocate() }
            for k in 0..<K {
                let out = sdfOut + k * classStride
                if counts[k] == 0 {
                    out.update(repeating: 0, count: N)
                    continue
                }
                ctx.binary(keys: keys, key: UInt16(k), into: bin)
                EDTEngine.transform(keys: UnsafePointer(bin), dims: ctx.dims, spacing: sp, scratch: out, dst: out,
                                    final: .distance, skipKey: 1, threads: threads)
            }
            ctx.insideFromOutside(keys: keys, K: K, counts: counts, offset: offset, sdf: sdfOut, rrw: rrwOut,
                                  classStride: classStride)
            return
        }

        let sq = UnsafeMutablePointer<Float>.allocate(capacity: N)
        defer { sq.deallocate() }
        var rrwDone = false
        if let conv = options.sdf, let sdfOut {
            let bin = UnsafeMutablePointer<UInt8>.allocate(capacity: N)
            defer { bin.deallocate() }
            for k in 0..<K {
                let out = sdfOut + k * classStride
                let rout = rrwOut.map { $0 + k * classStride }
                let c = counts[k]
                if c == 0 {
                    out.update(repeating: 0, count: N)
                    if conv != .itk, let rout { rout.update(repeating: 1, count: N) }
                    continue
                }
                if c == N {
                    ctx.fullClassSDF(conv, out: out)
                    // From the float SDF, as for every other class: with an SDF, RRW is always
                    // `rrwFromSDF` of it, so compact shards can leave RRW out and rebuild it exactly.
                    if conv != .itk, let rout {
                        ctx.rrwFromSDF(sdf: UnsafePointer(out), offset: conv == .boundary ? ctx.boundaryOffset : 0, out: rout)
                    }
                    continue
                }
                let key = UInt16(k)
                ctx.binary(keys: keys, key: key, into: bin)
                switch conv {
                case .boundary, .plain:
                    let offset = conv == .boundary ? ctx.boundaryOffset : 0
                    EDTEngine.transform(keys: UnsafePointer(bin), dims: ctx.dims, spacing: sp, scratch: out, dst: out,
                                        final: .signed(insideKey: 1, offset: offset), threads: threads)
                    if let rout { ctx.rrwFromSDF(sdf: UnsafePointer(out), offset: offset, out: rout) }
                case .itk:
                    let contour = UnsafeMutablePointer<UInt8>.allocate(capacity: N)
                    defer { contour.deallocate() }
                    ctx.contour(of: UnsafePointer(bin), into: contour)
                    EDTEngine.transform(keys: UnsafePointer(contour), dims: ctx.dims, spacing: sp, scratch: sq, dst: sq,
                                        final: .distance, threads: threads)
                    ctx.finishITK(dist: sq, inside: UnsafePointer(bin), contour: UnsafePointer(contour), out: out)
                }
            }
            rrwDone = conv != .itk
        }
        if let rrwOut, !rrwDone {
            EDTEngine.transform(keys: keys, dims: ctx.dims, spacing: sp, scratch: sq, dst: sq, final: .distance, threads: threads)
            for k in 0..<K {
                let rout = rrwOut + k * classStride
                if counts[k] == 0 {
                    rout.update(repeating: 1, count: N)
                } else if counts[k] == N {
                    ctx.fullClassRRW(out: rout)
                } else {
                    ctx.finishRRW(dist: UnsafePointer(sq), keys: keys, key: UInt16(k), out: rout)
                }
            }
        }
    }

    /// Voxels per key 0...K (K: labels outside the class list).
    static func classCounts(_ keys: UnsafePointer<UInt16>, _ n: Int, _ K: Int, threads: Int = 1) -> [Int] {
        // Fixed chunks counted in parallel, then summed (integer sums: order does not matter).
        let chunk = 1 << 18
        let chunks = Swift.max(1, (n + chunk - 1) / chunk)
        var partial = [Int](repeating: 0, count: chunks * (K + 1))
        partial.withUnsafeMutableBufferPointer { pb in
            let p = UnsafeSendable(pb.baseAddress!), kb = UnsafeSendable(keys)
            parallelChunks(chunks, threads: threads) { range in
                for c in range {
                    let start = c * chunk
                    let part = countOccurrences(UnsafeBufferPointer(start: kb.value + start, count: Swift.min(n, start + chunk) - start),
                                                bins: K + 1)
                    (p.value + c * (K + 1)).update(from: part, count: K + 1)
                }
            }
        }
        return (0...K).map { k in (0..<chunks).reduce(0) { $0 + partial[$1 * (K + 1) + k] } }
    }

    struct Context {
        let grid: MapGrid
        let spacing: [Double]
        let virtualAxis: Int
        let threads: Int
        var dims: [Int] { grid.dims3 }
        var N: Int { grid.count }

        /// h in the boundary convention: 1 voxel in px; in mm the smallest spacing among axes
        /// that have neighbours (size > 1), so that inner boundary voxels are 0 on isotropic grids.
        var boundaryOffset: Double {
            let axes = (0..<3).filter { dims[$0] > 1 }
            return (axes.isEmpty ? [0, 1, 2] : axes).map { spacing[$0] }.min()!
        }

        /// bin[i] = 1 where keys[i] == key, else 0.
        func binary(keys: UnsafePointer<UInt16>, key: UInt16, into bin: UnsafeMutablePointer<UInt8>) {
            let k = UnsafeSendable(keys), b = UnsafeSendable(bin)
            chunks { r in
                let keys = k.value, bin = b.value
                for i in r { bin[i] = keys[i] == key ? 1 : 0 }
            }
        }

        /// Parallel loop over voxel ranges (each range written by one worker).
        func chunks(_ body: @Sendable (Range<Int>) -> Void) {
            parallelRanges(N, threads: threads, body)
        }

        func finishITK(dist: UnsafeMutablePointer<Float>, inside: UnsafePointer<UInt8>, contour: UnsafePointer<UInt8>,
                       out: UnsafeMutablePointer<Float>) {
            let s = UnsafeSendable(UnsafePointer(dist)), m = UnsafeSendable(inside), c = UnsafeSendable(contour), o = UnsafeSendable(out)
            chunks { r in
                let dist = s.value, inside = m.value, contour = c.value, out = o.value
                for i in r {
                    let d = dist[i]
                    out[i] = contour[i] != 0 ? 0 : (inside[i] != 0 ? -d : d)
                }
            }
        }

        /// Completes boundary/plain SDFs whose outside voxels are written (`sdf[k]` holds voxel i's
        /// distance to class k wherever keys[i] != k; empty classes are all 0 and ignored): voxel
        /// i of class k is at distance d = min over the other non-empty classes m of sdf[m][i]
        /// from the nearest voxel outside k, so sdf[k][i] = offset − d (the value the two-sided
        /// route writes); RRW then follows from the SDF as on that route. Works through blocks of
        /// voxels small enough for every class's slice to stay in cache; each loop vectorises.
        func insideFromOutside(keys: UnsafePointer<UInt16>, K: Int, counts: [Int], offset: Double,
                               sdf: UnsafeMutablePointer<Float>, rrw: UnsafeMutablePointer<Float>?, classStride: Int) {
            let present = (0..<K).filter { counts[$0] > 0 }
            let off = Float(offset)
            let block = 4096
            let blocks = (N + block - 1) / block
            // Each class's smallest SDF value per block, taken while the block is in cache (RRW
            // needs the class minimum; min does not depend on the order, so neither on threads).
            var blockMin = [Float](repeating: .infinity, count: blocks * K)
            let wantMin = rrw != nil
            let kb = UnsafeSendable(keys), sb = UnsafeSendable(sdf)
            blockMin.withUnsafeMutableBufferPointer { bm in
                let mb = UnsafeSendable(bm.baseAddress!)
                parallelChunks(blocks, threads: threads) { range in
                    let keys = kb.value, sdf = sb.value
                    let inside = UnsafeMutablePointer<Float>.allocate(capacity: block)
                    defer { inside.deallocate() }
                    for blk in range {
                        let lo = blk * block, count = Swift.min(N, lo + block) - lo
                        let kp = keys + lo
                        inside.update(repeating: .infinity, count: count)
                        for m in present {
                            let key = UInt16(m), sp = sdf + (m * classStride + lo)
                            var j = 0
                            while j < count {
                                // Loads are unconditional and the choices selects, so the loop vectorises.
                                let x = sp[j], d = inside[j]
                                let v = kp[j] == key ? Float.infinity : x
                                inside[j] = v < d ? v : d
                                j &+= 1
                            }
                        }
                        for k in present {
                            let key = UInt16(k), sp = sdf + (k * classStride + lo)
                            var j = 0
                            while j < count {
                                let old = sp[j], v = off - inside[j]
                                sp[j] = kp[j] == key ? v : old
                                j &+= 1
                            }
                            if wantMin { mb.value[blk * K + k] = DistanceMaps.minMax(sp, count).0 }
                        }
                    }
                }
            }
            guard let rrw else { return }
            for k in 0..<K {
                let out = rrw + k * classStride
                if counts[k] == 0 { out.update(repeating: 1, count: N); continue }
                let minS = (0..<blocks).reduce(Float.infinity) { Swift.min($0, blockMin[$1 * K + k]) }
                rrwFromSDF(sdf: UnsafePointer(sdf + k * classStride), offset: offset, out: out, minimum: minS)
            }
        }

        /// RRW from inside distances: -d/max(d) where keys == key, +1 elsewhere.
        func finishRRW<Key: FixedWidthInteger & Sendable>(dist: UnsafePointer<Float>, keys: UnsafePointer<Key>, key: Key,
                                                          out: UnsafeMutablePointer<Float>) {
            var maxD: Float = 0
            for i in 0..<N where keys[i] == key { maxD = Swift.max(maxD, dist[i]) }
            let inv = 1 / Double(maxD)
            let s = UnsafeSendable(dist), k = UnsafeSendable(keys), o = UnsafeSendable(out)
            chunks { r in
                let dist = s.value, keys = k.value, out = o.value
                for i in r {
                    out[i] = keys[i] == key ? Float(-Double(dist[i]) * inv) : 1
                }
            }
        }

        /// RRW from a boundary/plain SDF of the same class: inside, d = offset − sdf. Inside voxels
        /// are those with sdf below offset/2: there d ≥ offset (the smallest spacing), so sdf ≤ 0
        /// up to rounding, while outside sdf = d ≥ offset. So the mask is not read and both loops
        /// vectorise.
        func rrwFromSDF(sdf: UnsafePointer<Float>, offset: Double, out: UnsafeMutablePointer<Float>,
                        minimum: Float? = nil) {
            let minS = minimum ?? DistanceMaps.minMax(sdf, N).0
            let half = Float(offset / 2)
            // In double, as `finishRRW` does, so both routes give the same bits.
            let inv = 1 / (offset - Double(minS))
            let s = UnsafeSendable(sdf), o = UnsafeSendable(out)
            chunks { r in
                let sdf = s.value, out = o.value
                var i = r.lowerBound
                while i < r.upperBound {
                    let v = sdf[i]
                    out[i] = v < half ? Float(-(offset - Double(v)) * inv) : 1
                    i &+= 1
                }
            }
        }

        /// Squared physical offsets along one axis, (shift(i) · spacing)² for each index i. The
        /// full-class maps are separable sums of three such tables.
        func axisTable(_ axis: Int, shift: (Int) -> Int) -> [Double] {
            (0..<dims[axis]).map { let c = Double(shift($0)) * spacing[axis]; return c * c }
        }

        /// Fills out[i] = f(tx[x] + ty[y] + tz[z]) over the grid, x fastest.
        func fillSeparable<T>(_ tx: [Double], _ ty: [Double], _ tz: [Double], out: UnsafeMutablePointer<T>,
                              _ f: (Double) -> T) {
            var i = 0
            for z in 0..<dims[2] {
                for y in 0..<dims[1] {
                    let yz = ty[y] + tz[z]
                    for x in 0..<dims[0] { out[i] = f(tx[x] + yz); i += 1 }
                }
            }
        }

        /// Per-axis tables of the squared distance to scipy's virtual background voxel (index -1 on
        /// `virtualAxis`, 0 on the other axes).
        var virtualTables: ([Double], [Double], [Double]) {
            let t = (0..<3).map { a in axisTable(a) { a == virtualAxis ? $0 + 1 : $0 } }
            return (t[0], t[1], t[2])
        }

        /// A class that fills the grid: every convention is applied as if scipy's virtual background
        /// voxel existed (see docs/distance-maps.md).
        func fullClassSDF(_ conv: SDFConvention, out: UnsafeMutablePointer<Float>) {
            switch conv {
            case .boundary:
                let h = boundaryOffset
                let (tx, ty, tz) = virtualTables
                fillSeparable(tx, ty, tz, out: out) { Float(h - $0.squareRoot()) }
            case .plain:
                let (tx, ty, tz) = virtualTables
                fillSeparable(tx, ty, tz, out: out) { Float(-$0.squareRoot()) }
            case .itk:
                // Contour = the voxels adjacent (3^n neighbourhood) to the virtual voxel:
                // index 0 on the virtual axis, 0 or 1 on the others.
                let t = (0..<3).map { a in axisTable(a) { a == virtualAxis ? $0 : Swift.max($0 - 1, 0) } }
                fillSeparable(t[0], t[1], t[2], out: out) { $0 == 0 ? 0 : Float(-$0.squareRoot()) }
            }
        }

        func fullClassRRW(out: UnsafeMutablePointer<Float>) {
            let (tx, ty, tz) = virtualTables
            let maxD = (tx.last! + ty.last! + tz.last!).squareRoot()  // the last voxel is the farthest
            fillSeparable(tx, ty, tz, out: out) { Float(-$0.squareRoot() / maxD) }
        }

        /// ITK's contour: voxels of the mask with a voxel outside it among their 3^n − 1
        /// neighbours inside the grid (the grid edge is not outside). Computed as mask AND NOT
        /// (mask eroded by the 3x3x3 box), the box erosion done separably.
        func contour(of mask: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<UInt8>) {
            let nx = dims[0], ny = dims[1], nz = dims[2]
            let a = UnsafeMutablePointer<UInt8>.allocate(capacity: N)
            let b = UnsafeMutablePointer<UInt8>.allocate(capacity: N)
            defer { a.deallocate(); b.deallocate() }
            // x
            for r in 0..<(ny * nz) {
                let base = r * nx
                for x in 0..<nx {
                    var v = mask[base + x]
                    if x > 0 { v = Swift.min(v, mask[base + x - 1]) }
                    if x < nx - 1 { v = Swift.min(v, mask[base + x + 1]) }
                    a[base + x] = v
                }
            }
            // y
            for z in 0..<nz {
                for y in 0..<ny {
                    let base = (z * ny + y) * nx
                    for x in 0..<nx {
                        var v = a[base + x]
                        if y > 0 { v = Swift.min(v, a[base + x - nx]) }
                        if y < ny - 1 { v = Swift.min(v, a[base + x + nx]) }
                        b[base + x] = v
                    }
                }
            }
            // z
            let plane = nx * ny
            for z in 0..<nz {
                for j in 0..<plane {
                    let i = z * plane + j
                    var v = b[i]
                    if z > 0 { v = Swift.min(v, b[i - plane]) }
                    if z < nz - 1 { v = Swift.min(v, b[i + plane]) }
                    out[i] = mask[i] != 0 && v == 0 ? 1 : 0
                }
            }
        }
    }
}
