import MedprepProcessing

/// Test oracles computed by brute force (all pairs), independent of the separable algorithm.
enum Brute {
    /// Deterministic generator (SplitMix64) so failures reproduce.
    struct RNG {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func coords(_ i: Int, _ d: [Int]) -> [Int] {
        let d3 = (0..<3).map { $0 < d.count ? d[$0] : 1 }
        return [i % d3[0], (i / d3[0]) % d3[1], i / (d3[0] * d3[1])]
    }

    /// Voxel centres scaled by spacing, flattened (x, y, z, x, y, z, ...).
    static func points(count: Int, dims: [Int], spacing: [Double]) -> [Double] {
        var out = [Double]()
        out.reserveCapacity(count * 3)
        for i in 0..<count {
            let p = coords(i, dims)
            for k in 0..<3 { out.append(Double(p[k]) * (k < spacing.count ? spacing[k] : 1)) }
        }
        return out
    }

    /// Distance from each voxel to the nearest voxel where `target` holds (+inf when none).
    static func distanceTo(_ target: (Int) -> Bool, count: Int, dims: [Int], spacing: [Double]) -> [Double] {
        let pts = points(count: count, dims: dims, spacing: spacing)
        let targets = (0..<count).filter(target)
        return pts.withUnsafeBufferPointer { p in
            (0..<count).map { i in
                var best = Double.infinity
                for t in targets {
                    let dx = p[3 * i] - p[3 * t], dy = p[3 * i + 1] - p[3 * t + 1], dz = p[3 * i + 2] - p[3 * t + 2]
                    best = min(best, dx * dx + dy * dy + dz * dz)
                }
                return best.squareRoot()
            }
        }
    }

    /// Distance from each voxel to the nearest voxel with a different label.
    static func distanceToOther(_ labels: [Int32], dims: [Int], spacing: [Double]) -> [Double] {
        let pts = points(count: labels.count, dims: dims, spacing: spacing)
        return pts.withUnsafeBufferPointer { p in
            labels.indices.map { i in
                var best = Double.infinity
                for t in labels.indices where labels[t] != labels[i] {
                    let dx = p[3 * i] - p[3 * t], dy = p[3 * i + 1] - p[3 * t + 1], dz = p[3 * i + 2] - p[3 * t + 2]
                    best = min(best, dx * dx + dy * dy + dz * dz)
                }
                return best.squareRoot()
            }
        }
    }

    /// Random labels 0..<nLabels: either noise or blobs (thresholded sums of random bumps).
    static func labels(_ rng: inout RNG, dims: [Int], nLabels: Int, blobs: Bool) -> [Int32] {
        let n = dims.reduce(1, *)
        if !blobs { return (0..<n).map { _ in Int32(rng.int(nLabels)) } }
        var out = [Int32](repeating: 0, count: n)
        for l in 1..<nLabels {
            let centre = (0..<3).map { k in k < dims.count ? rng.unit() * Double(dims[k]) : 0 }
            let radius = 1.5 + rng.unit() * Double(dims.max()!) / 3
            for i in 0..<n {
                let p = coords(i, dims)
                var r = 0.0
                for k in 0..<3 { let c = Double(p[k]) - centre[k]; r += c * c }
                if r.squareRoot() < radius { out[i] = Int32(l) }
            }
        }
        return out
    }

    /// ITK contour: voxels of the mask with a non-mask voxel among their 3^n − 1 neighbours.
    static func contour(_ mask: [Bool], dims: [Int]) -> [Bool] {
        let d3 = (0..<3).map { $0 < dims.count ? dims[$0] : 1 }
        return mask.indices.map { i in
            guard mask[i] else { return false }
            let p = coords(i, dims)
            for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                let q = [p[0] + dx, p[1] + dy, p[2] + dz]
                if (0..<3).allSatisfy({ q[$0] >= 0 && q[$0] < d3[$0] }) {
                    if !mask[(q[2] * d3[1] + q[1]) * d3[0] + q[0]] { return true }
                }
            } } }
            return false
        }
    }

    /// The three SDF conventions and RRW straight from their definitions.
    static func sdf(_ labels: [Int32], cls: Int32, dims: [Int], spacing: [Double], convention: SDFConvention,
                    h: Double) -> [Double] {
        let n = labels.count
        let mask = labels.map { $0 == cls }
        if !mask.contains(true) { return [Double](repeating: 0, count: n) }
        let toIn = distanceTo({ mask[$0] }, count: n, dims: dims, spacing: spacing)
        let toOut = distanceTo({ !mask[$0] }, count: n, dims: dims, spacing: spacing)
        switch convention {
        case .boundary: return (0..<n).map { mask[$0] ? -(toOut[$0] - h) : toIn[$0] }
        case .plain: return (0..<n).map { mask[$0] ? -toOut[$0] : toIn[$0] }
        case .itk:
            let c = contour(mask, dims: dims)
            let toC = distanceTo({ c[$0] }, count: n, dims: dims, spacing: spacing)
            return (0..<n).map { c[$0] ? 0 : (mask[$0] ? -toC[$0] : toIn[$0]) }
        }
    }

    static func rrw(_ labels: [Int32], cls: Int32, dims: [Int], spacing: [Double]) -> [Double] {
        let n = labels.count
        let mask = labels.map { $0 == cls }
        if !mask.contains(true) { return [Double](repeating: 1, count: n) }
        let toOut = distanceTo({ !mask[$0] }, count: n, dims: dims, spacing: spacing)
        let mx = (0..<n).filter { mask[$0] }.map { toOut[$0] }.max()!
        return (0..<n).map { mask[$0] ? -toOut[$0] / mx : 1 }
    }

    /// Largest |a − b| / max(1, |b|).
    static func maxRelError(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
    }
}
