import MedprepCore
import MedprepDataset

/// A voxel grid, x fastest; 2D images have nz == 1.
package struct Grid: Sendable, Equatable {
    package var nx: Int, ny: Int, nz: Int
    package var count: Int { nx * ny * nz }
    package var is2D: Bool { nz == 1 }

    package func coords(_ v: Int) -> [Int] { [v % nx, (v / nx) % ny, v / (nx * ny)] }
    package func coordText(_ v: Int) -> String {
        let c = coords(v)
        return is2D ? "(x \(c[0]), y \(c[1]))" : "(x \(c[0]), y \(c[1]), z \(c[2]))"
    }
    package func size(axis: Int) -> Int { [nx, ny, nz][axis] }
}

/// A neighbour offset with its flat delta.
package struct Offset { let dx: Int, dy: Int, dz: Int, delta: Int }

package enum Neighbourhood {
    /// Offsets of `grid`'s neighbourhood: faces only (6 / 4) or full (26 / 8). `backward` keeps
    /// those that come earlier in memory order (for one-pass union-find).
    package static func offsets(_ g: Grid, full: Bool, backward: Bool) -> [Offset] {
        var out: [Offset] = []
        let zr = g.is2D ? [0] : [-1, 0, 1]
        for dz in zr {
            for dy in [-1, 0, 1] {
                for dx in [-1, 0, 1] {
                    let n = abs(dx) + abs(dy) + abs(dz)
                    if n == 0 || (!full && n > 1) { continue }
                    let delta = (dz * g.ny + dy) * g.nx + dx
                    if backward && delta >= 0 { continue }
                    out.append(Offset(dx: dx, dy: dy, dz: dz, delta: delta))
                }
            }
        }
        return out
    }
}

/// Structure of a mask of class codes (all below MaskCodes.undeclaredBase): connected
/// components per class, ordinal contact and nesting, holes inside ordinal layers.
package struct MaskStructure {
    package struct Component { var cls: UInt16; var size: Int; var first: Int }
    package struct Hole { var size: Int; var level: Int; var fill: [Int]; var first: Int }

    package var components: [Component] = []
    /// Ordinal contact faces (classes >= 2 apart), excluding those of nesting components.
    package var contactFaces = 0
    /// Voxels on either side of a counted contact face.
    package var contactVoxels = 0
    /// Faces between voxels of different classes (the denominator of the contact share).
    package var transitions = 0
    /// Contact faces per (lower class, higher class).
    package var contactPairs: [[Int]: Int] = [:]
    /// Slice with the most contact faces along the slice axis, and that count.
    package var worstSlice: (index: Int, faces: Int)? = nil
    /// Components of class k >= 2 touching classes <= k-2 and never class k-1.
    package var nesting: [(component: Int, farFaces: Int, touching: [Int])] = []
    package var holes: [Hole] = []
    /// Voxels to mark in thumbnails (capped).
    package var marks: [Int32] = []
    package static let markCap = 1 << 20

    /// Labels components of equal non-zero code (union-find, one pass, then a relabelling pass in
    /// which every root is the smallest index of its component). Returns component ids per voxel
    /// (-1 for background). Neighbour tests read the padded codes, so no bounds checks.
    package static func label(_ pc: PaddedCodes, full: Bool) -> ([Int32], [Component]) {
        let g = pc.grid
        let n = g.count
        var parent = [Int32](repeating: -1, count: n)
        let offs = Neighbourhood.offsets(g, full: full, backward: true)
        let pdeltas = offs.map { pc.delta($0) }
        let deltas = offs.map(\.delta)
        // When the left neighbour has the same class the voxel joins it, and only the neighbours
        // the left one cannot see remain (dx = +1 for the full neighbourhood; the non-x faces).
        let rest = offs.indices.filter { full ? offs[$0].dx == 1 : offs[$0].dx == 0 }
        let restP = rest.map { pdeltas[$0] }, restD = rest.map { deltas[$0] }
        var comps: [Component] = []
        pc.codes.withUnsafeBufferPointer { padded in
        parent.withUnsafeMutableBufferPointer { p in
            @inline(__always) func find(_ x: Int32) -> Int32 {
                var x = x
                while p[Int(x)] != x {
                    let gp = p[Int(p[Int(x)])]
                    p[Int(x)] = gp
                    x = gp
                }
                return x
            }
            var v = 0
            for z in 0..<g.nz {
                for y in 0..<g.ny {
                    var q = pc.index(0, y, z)
                    for _ in 0..<g.nx {
                        defer { v += 1; q += 1 }
                        let c = padded[q]
                        if c == 0 { continue }
                        if padded[q - 1] == c {
                            p[v] = p[v - 1]
                            for k in 0..<restP.count where padded[q + restP[k]] == c {
                                let u = v + restD[k]
                                let ra = find(Int32(u)), rb = find(Int32(v))
                                if ra == rb { continue }
                                if ra < rb { p[Int(rb)] = ra } else { p[Int(ra)] = rb }
                            }
                            continue
                        }
                        p[v] = Int32(v)
                        for k in 0..<pdeltas.count where padded[q + pdeltas[k]] == c {
                            let u = v + deltas[k]
                            let ra = find(Int32(u)), rb = find(Int32(v))
                            if ra == rb { continue }
                            if ra < rb { p[Int(rb)] = ra } else { p[Int(ra)] = rb }
                        }
                    }
                }
            }
            // Parents always have smaller indices, so one ascending pass turns roots into ids
            // (stored as -(id + 2)) and copies them down.
            for v in 0..<n where p[v] >= 0 {
                let q = Int(p[v])
                if q == v {
                    p[v] = -Int32(comps.count + 2)
                    comps.append(Component(cls: 0, size: 1, first: v))
                } else {
                    let id = p[q]
                    p[v] = id
                    comps[Int(-id - 2)].size += 1
                }
            }
            for v in 0..<n where p[v] <= -2 { p[v] = -p[v] - 2 }
        }
        }
        for i in comps.indices { comps[i].cls = pc.code(at: comps[i].first) }
        return (parent, comps)
    }

    /// Runs the structure checks. `ordinal` adds contact, nesting and hole analysis.
    ///
    /// The work is done on the foreground's bounding box plus a one-voxel margin (clipped at the
    /// volume border). That is exact: every voxel outside the box is background connected to the
    /// border, faces outside it join background to background, and the margin keeps the faces
    /// between the box and the outside. Positions are mapped back to the full grid.
    package static func analyse(codes: [UInt16], grid g: Grid, classCount k: Int, ordinal: Bool, full: Bool,
                        minComponentSize: Int, sliceAxis: Int) -> MaskStructure {
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        codes.withUnsafeBufferPointer { c in
            var v = 0
            for z in 0..<g.nz {
                for y in 0..<g.ny {
                    var first = -1, last = -1
                    for x in 0..<g.nx {
                        if c[v + x] != 0 { if first < 0 { first = x }; last = x }
                    }
                    v += g.nx
                    if first >= 0 {
                        lo[0] = min(lo[0], first); hi[0] = max(hi[0], last)
                        lo[1] = min(lo[1], y); hi[1] = max(hi[1], y)
                        lo[2] = min(lo[2], z); hi[2] = max(hi[2], z)
                    }
                }
            }
        }
        guard hi[0] >= 0 else { return MaskStructure() }
        let dims = [g.nx, g.ny, g.nz]
        let o = (0..<3).map { max(0, lo[$0] - 1) }
        let e = (0..<3).map { min(dims[$0] - 1, hi[$0] + 1) }
        let sub = Grid(nx: e[0] - o[0] + 1, ny: e[1] - o[1] + 1, nz: e[2] - o[2] + 1)
        if sub == g { return analyseGrid(codes: codes, grid: g, classCount: k, ordinal: ordinal, full: full,
                                         minComponentSize: minComponentSize, sliceAxis: sliceAxis) }
        var cropped = [UInt16](repeating: 0, count: sub.count)
        for z in 0..<sub.nz {
            for y in 0..<sub.ny {
                let from = ((z + o[2]) * g.ny + y + o[1]) * g.nx + o[0], to = (z * sub.ny + y) * sub.nx
                for x in 0..<sub.nx { cropped[to + x] = codes[from + x] }
            }
        }
        var s = analyseGrid(codes: cropped, grid: sub, classCount: k, ordinal: ordinal, full: full,
                            minComponentSize: minComponentSize, sliceAxis: sliceAxis)
        func back(_ v: Int) -> Int {
            let c = sub.coords(v)
            return ((c[2] + o[2]) * g.ny + c[1] + o[1]) * g.nx + c[0] + o[0]
        }
        for i in s.components.indices { s.components[i].first = back(s.components[i].first) }
        for i in s.holes.indices { s.holes[i].first = back(s.holes[i].first) }
        s.marks = s.marks.map { Int32(back(Int($0))) }.sorted()
        if let w = s.worstSlice { s.worstSlice = (w.index + o[sliceAxis], w.faces) }
        return s
    }

    package static func analyseGrid(codes: [UInt16], grid g: Grid, classCount k: Int, ordinal: Bool, full: Bool,
                            minComponentSize: Int, sliceAxis: Int) -> MaskStructure {
        var s = MaskStructure()
        let pc = PaddedCodes(codes, grid: g)
        let (comp, comps) = label(pc, full: full)
        s.components = comps
        var markSet = Set<Int32>()
        func mark(_ v: Int) { if markSet.count < markCap { markSet.insert(Int32(v)) } }
        let smallIDs = Set(comps.indices.filter { comps[$0].size < minComponentSize })
        if ordinal {
            codes.withUnsafeBufferPointer { c in
                s.ordinalContact(c, comp: comp, grid: g, sliceAxis: sliceAxis, mark: mark)
            }
            s.findHoles(pc, classCount: k, full: full, mark: mark)
        }
        let nestingIDs = Set(s.nesting.map(\.component))
        if !smallIDs.isEmpty || !nestingIDs.isEmpty {
            for v in 0..<g.count where comp[v] >= 0 {
                let id = Int(comp[v])
                if smallIDs.contains(id) || nestingIDs.contains(id) { mark(v) }
            }
        }
        s.marks = markSet.sorted()
        return s
    }

    package mutating func ordinalContact(_ c: UnsafeBufferPointer<UInt16>, comp: [Int32], grid g: Grid, sliceAxis: Int,
                                 mark: (Int) -> Void) {
        let nComp = components.count
        var far = [Int](repeating: 0, count: nComp)
        var below = [Bool](repeating: false, count: nComp)
        var touching = [Set<Int>](repeating: [], count: 0)
        var touchIndex: [Int: Int] = [:]
        var faces: [(Int32, Int32)] = []  // (higher-class voxel, lower-class voxel)
        let faceCap = 1 << 22
        var transitions = 0
        let plane = g.nx * g.ny
        comp.withUnsafeBufferPointer { comp in
            func visit(_ v: Int, _ u: Int) {
                let a = c[v], b = c[u]
                if a == b { return }
                transitions += 1
                let (hi, lo) = a > b ? (v, u) : (u, v)
                let hc = Int(c[hi]), lc = Int(c[lo])
                let id = Int(comp[hi])
                if hc - lc >= 2 {
                    far[id] += 1
                    if faces.count < faceCap { faces.append((Int32(hi), Int32(lo))) }
                    if let t = touchIndex[id] { touching[t].insert(lc) } else { touchIndex[id] = touching.count; touching.append([lc]) }
                } else if hc >= 2 {
                    below[id] = true
                }
            }
            var v = 0
            for z in 0..<g.nz {
                for y in 0..<g.ny {
                    for x in 0..<g.nx {
                        if x + 1 < g.nx { visit(v, v + 1) }
                        if y + 1 < g.ny { visit(v, v + g.nx) }
                        if z + 1 < g.nz { visit(v, v + plane) }
                        v += 1
                    }
                }
            }
        }
        self.transitions = transitions
        for id in 0..<nComp where far[id] > 0 && !below[id] {
            nesting.append((id, far[id], touching[touchIndex[id]!].sorted()))
        }
        let nestingIDs = Set(nesting.map(\.component))
        var perSlice: [Int: Int] = [:]
        var voxels = Set<Int32>()
        for (hi, lo) in faces where !nestingIDs.contains(Int(comp[Int(hi)])) {
            contactFaces += 1
            contactPairs[[Int(c[Int(lo)]), Int(c[Int(hi)])], default: 0] += 1
            perSlice[g.coords(Int(hi))[sliceAxis], default: 0] += 1
            if voxels.insert(hi).inserted { mark(Int(hi)) }
            if voxels.insert(lo).inserted { mark(Int(lo)) }
        }
        contactVoxels = voxels.count
        if let w = perSlice.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }) {
            worstSlice = (w.key, w.value)
        }
    }

    /// Holes in ordinal layers: h(v) is the lowest level L such that v connects to the volume
    /// border through voxels of class <= L (minimax path, bucket queue). A voxel of class c with
    /// h(v) > c is enclosed by the layer {class >= c+1}: a hole. Background paths use the dual
    /// connectivity of the components (faces when components use the full neighbourhood).
    /// Works on the padded grid: padding has h = 0, so it is never entered and needs no checks.
    package mutating func findHoles(_ pc: PaddedCodes, classCount k: Int, full: Bool, mark: (Int) -> Void) {
        let g = pc.grid
        guard k >= 2, g.count > 0 else { return }
        let pdeltas = Neighbourhood.offsets(g, full: !full, backward: false).map { pc.delta($0) }
        var h = [UInt16](repeating: 0, count: pc.codes.count)
        var buckets = [[Int32]](repeating: [], count: k)
        pc.codes.withUnsafeBufferPointer { c in
            h.withUnsafeMutableBufferPointer { h in
                for z in 0..<g.nz {
                    for y in 0..<g.ny {
                        let row = pc.index(0, y, z)
                        let edgeRow = y == 0 || y == g.ny - 1 || (!g.is2D && (z == 0 || z == g.nz - 1))
                        for x in 0..<g.nx {
                            let q = row + x
                            if edgeRow || x == 0 || x == g.nx - 1 {
                                h[q] = c[q]
                                buckets[Int(c[q])].append(Int32(q))
                            } else {
                                h[q] = UInt16.max
                            }
                        }
                    }
                }
                for level in 0..<k {
                    var current = buckets[level]
                    buckets[level] = []
                    var i = 0
                    while i < current.count {
                        let q = Int(current[i])
                        i += 1
                        if Int(h[q]) != level { continue }
                        for d in pdeltas {
                            let u = q + d
                            let hu = h[u]
                            if hu <= UInt16(level) { continue }
                            let cu = c[u]
                            let nl = max(UInt16(level), cu)
                            if nl < hu {
                                h[u] = nl
                                if Int(nl) == level { current.append(Int32(u)) } else { buckets[Int(nl)].append(Int32(u)) }
                            }
                        }
                    }
                }
                // Group hole voxels into holes (same dual connectivity).
                for z in 0..<g.nz {
                    for y in 0..<g.ny {
                        let row = pc.index(0, y, z)
                        for x in 0..<g.nx where h[row + x] > c[row + x] {
                            let start = row + x
                            var hole = Hole(size: 0, level: Int(h[start]), fill: [], first: (z * g.ny + y) * g.nx + x)
                            var fill = Set<Int>()
                            var queue = [start]
                            h[start] = c[start]
                            var qi = 0
                            while qi < queue.count {
                                let q = queue[qi]
                                qi += 1
                                hole.size += 1
                                fill.insert(Int(c[q]))
                                mark(pc.unpadded(q))
                                for d in pdeltas where h[q + d] > c[q + d] {
                                    hole.level = min(hole.level, Int(h[q + d]))
                                    h[q + d] = c[q + d]
                                    queue.append(q + d)
                                }
                            }
                            // The enclosing layer: the lowest level that closes around the whole hole.
                            hole.level = max(hole.level, (fill.max() ?? 0) + 1)
                            hole.fill = fill.sorted()
                            holes.append(hole)
                        }
                    }
                }
            }
        }
    }
}

/// Class codes on a grid padded by one background voxel on every side (2D: x and y only), so
/// neighbour lookups need no bounds checks.
package struct PaddedCodes {
    package let grid: Grid
    package let px: Int, py: Int, zo: Int
    package var codes: [UInt16]

    package init(_ src: [UInt16], grid g: Grid) {
        grid = g
        px = g.nx + 2
        py = g.ny + 2
        zo = g.is2D ? 0 : 1
        let pz = g.nz + 2 * zo
        var out = [UInt16](repeating: 0, count: px * py * pz)
        let (px, py, zo) = (self.px, self.py, self.zo)
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for z in 0..<g.nz {
                    for y in 0..<g.ny {
                        let from = (z * g.ny + y) * g.nx
                        let to = ((z + zo) * py + y + 1) * px + 1
                        for x in 0..<g.nx { o[to + x] = s[from + x] }
                    }
                }
            }
        }
        codes = out
    }

    @inline(__always) package func index(_ x: Int, _ y: Int, _ z: Int) -> Int { ((z + zo) * py + y + 1) * px + x + 1 }
    package func delta(_ o: Offset) -> Int { (o.dz * py + o.dy) * px + o.dx }
    package func unpadded(_ q: Int) -> Int {
        let x = q % px - 1, y = (q / px) % py - 1, z = q / (px * py) - zo
        return (z * grid.ny + y) * grid.nx + x
    }
    package func code(at v: Int) -> UInt16 {
        let c = grid.coords(v)
        return codes[index(c[0], c[1], c[2])]
    }
}
