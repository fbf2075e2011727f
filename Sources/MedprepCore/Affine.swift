/// A 4x4 affine mapping voxel indices (i, j, k, 1) to world millimetres (x, y, z, 1).
/// Stored row-major; there is no `simd` module on Linux.
public struct Affine4: Sendable, Equatable, Codable {
    public var m: [Double]  // 16 values, row-major

    public init(rowMajor: [Double]) {
        precondition(rowMajor.count == 16, "Affine4 needs 16 values")
        m = rowMajor
    }

    public static let identity = Affine4(rowMajor: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])

    public subscript(row: Int, col: Int) -> Double {
        get { m[row * 4 + col] }
        set { m[row * 4 + col] = newValue }
    }

    public var rows: [[Double]] { (0..<4).map { r in Array(m[(r * 4)..<(r * 4 + 4)]) } }

    public static func * (a: Affine4, b: Affine4) -> Affine4 {
        var out = [Double](repeating: 0, count: 16)
        for r in 0..<4 {
            for c in 0..<4 {
                var s = 0.0
                for k in 0..<4 { s += a[r, k] * b[k, c] }
                out[r * 4 + c] = s
            }
        }
        return Affine4(rowMajor: out)
    }

    /// Applies the affine to a voxel index.
    public func apply(_ p: (Double, Double, Double)) -> (Double, Double, Double) {
        let v = [p.0, p.1, p.2, 1]
        func row(_ r: Int) -> Double { (0..<4).reduce(0) { $0 + self[r, $1] * v[$1] } }
        return (row(0), row(1), row(2))
    }

    /// Voxel sizes implied by the affine: the length of each of the first three columns.
    public var columnNorms: [Double] {
        (0..<3).map { c in (0..<3).reduce(0.0) { $0 + self[$1, c] * self[$1, c] }.squareRoot() }
    }

    /// Largest absolute element-wise difference from another affine.
    public func maxAbsDifference(_ other: Affine4) -> Double {
        zip(m, other.m).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}

/// Where an image's affine came from, in nibabel's order of preference.
public enum AffineSource: String, Sendable, Codable {
    /// NIfTI sform (sform_code > 0).
    case sform
    /// NIfTI qform quaternion (qform_code > 0, sform_code == 0).
    case qform
    /// Neither code set: nibabel's base affine from pixdim (x flipped, centred).
    case pixdim
    /// A 2D image (PNG/JPEG): identity-like affine from pixel spacing, see docs/conventions.md.
    case image2D = "image2d"
}

/// The grid of a deep-supervision map at scale s: ceil(H/s) × ceil(W/s), the sample of every s-th
/// pixel from (0, 0). The one formula for the kernel, the shard layout and the shard checks
/// (the trainer's `mapslib.plane_size` is its Python twin).
public enum MapPlane {
    public static func size(height: Int, width: Int, scale: Int) -> (height: Int, width: Int) {
        ((height + scale - 1) / scale, (width + scale - 1) / scale)
    }
}
