/// Orientation codes ("RAS", "LPS", ...) from an affine, following nibabel's
/// `io_orientation` + `ornt2axcodes`: take the closest rotation to the normalised
/// direction matrix (polar decomposition), then assign each voxel axis, in order,
/// the world axis it moves along most, never reusing a world axis.
public enum Orientation {
    /// One entry per voxel axis: world axis index (0 = x/R, 1 = y/A, 2 = z/S) and sign.
    public struct AxisMapping: Sendable, Equatable {
        public var worldAxis: Int
        public var flipped: Bool
    }

    public static func axisMappings(_ affine: Affine4) -> [AxisMapping?] {
        var rs = [[Double]](repeating: [0, 0, 0], count: 3)
        for c in 0..<3 {
            var norm = 0.0
            for r in 0..<3 { norm += affine[r, c] * affine[r, c] }
            norm = norm.squareRoot()
            if norm == 0 { norm = 1 }
            for r in 0..<3 { rs[r][c] = affine[r, c] / norm }
        }
        var rot = polarOrthogonal(rs) ?? rs
        var out = [AxisMapping?](repeating: nil, count: 3)
        for inAx in 0..<3 {
            let col = (0..<3).map { rot[$0][inAx] }
            guard col.contains(where: { abs($0) > 1e-8 }) else { continue }
            var best = 0
            for r in 1..<3 where abs(col[r]) > abs(col[best]) { best = r }
            out[inAx] = AxisMapping(worldAxis: best, flipped: col[best] < 0)
            for c in 0..<3 { rot[best][c] = 0 }
        }
        return out
    }

    /// Three-letter code, e.g. "RAS"; "?" for an axis with no direction.
    public static func code(_ affine: Affine4) -> String {
        let labels: [(Character, Character)] = [("R", "L"), ("A", "P"), ("S", "I")]
        return String(axisMappings(affine).map { m -> Character in
            guard let m else { return "?" }
            return m.flipped ? labels[m.worldAxis].1 : labels[m.worldAxis].0
        })
    }

    /// Orthogonal polar factor by Newton iteration R <- (R + R^-T)/2; nil when singular.
    public static func polarOrthogonal(_ a: [[Double]]) -> [[Double]]? {
        var r = a
        for _ in 0..<100 {
            guard let inv = inverse3(r) else { return nil }
            var next = r
            var delta = 0.0
            for i in 0..<3 {
                for j in 0..<3 {
                    next[i][j] = 0.5 * (r[i][j] + inv[j][i])
                    delta = max(delta, abs(next[i][j] - r[i][j]))
                }
            }
            r = next
            if delta < 1e-14 { break }
        }
        return r
    }

    static func inverse3(_ a: [[Double]]) -> [[Double]]? {
        let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        guard abs(det) > 1e-12 else { return nil }
        var inv = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 {
            for j in 0..<3 {
                let r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3
                inv[i][j] = (a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0]) / det
            }
        }
        return inv
    }
}
