import MedprepCore

/// Everything derived from a header that describes the voxel grid, after the same
/// repairs nibabel makes on load (zero pixdim -> 1, negative pixdim -> abs, qfac -> 1,
/// invalid xform codes -> 0). Computed once, before any data is allocated.
public struct NIfTILayout: Sendable {
    public var dims: [Int]
    public var spacing: [Double]
    public var datatype: NIfTIDatatype
    public var voxelType: VoxelType
    public var dataOffset: Int
    public var dataBytes: Int
    public var scaling: IntensityScaling?
    public var affine: Affine4
    public var affineSource: AffineSource

    /// Refuses allocations above this many bytes of voxel data (4 TiB): a sanity cap,
    /// the real bound is the file (or the gzip's plausible expansion) size.
    static let maxDataBytes = 1 << 42

    public init(header h: NIfTIHeader, path: String) throws {
        let ndim = Int(h.dim[0])
        guard (1...7).contains(ndim) else {
            throw MedprepError(.badHeader, path: path, "dim[0] is '\(h.dim[0])', expected 1 to 7 dimensions.")
        }
        var dims: [Int] = []
        var count = 1
        for i in 1...ndim {
            let d = h.dim[i]
            guard d >= 1 else {
                throw MedprepError(.badHeader, path: path, "dim[\(i)] is '\(d)'; every dimension must be at least 1.")
            }
            let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, p <= NIfTILayout.maxDataBytes else {
                throw MedprepError(.tooLarge, path: path, "dims \(h.dim[1...ndim].map(String.init).joined(separator: "x")) describe more voxels than medprep can hold.")
            }
            count = p
            dims.append(Int(d))
        }
        guard let dt = NIfTIDatatype.forCode(h.datatype) else {
            throw MedprepError(.unsupported, path: path, "unsupported datatype '\(h.datatype)' (not a NIfTI datatype code).")
        }
        guard let vt = dt.voxelType else {
            throw MedprepError(.unsupported, path: path, "unsupported datatype '\(h.datatype)' (\(dt.name)).")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dt.bytesPerVoxel)
        guard !overflow, bytes <= NIfTILayout.maxDataBytes else {
            throw MedprepError(.tooLarge, path: path, "the header describes more than \(NIfTILayout.maxDataBytes) bytes of voxel data.")
        }
        let off = h.voxOffset
        guard off.isFinite, off >= 0, off < Double(NIfTILayout.maxDataBytes) else {
            throw MedprepError(.badHeader, path: path, "vox_offset is '\(off)', expected a non-negative byte offset.")
        }
        let headerEnd = h.version == .nifti1 ? 352 : 544
        if h.singleFile && Int(off) < headerEnd {
            throw MedprepError(.badHeader, path: path,
                               "vox_offset is '\(Int(off))', inside the header; a single-file NIfTI-\(h.version.rawValue) needs at least \(headerEnd).")
        }
        // nibabel's load-time fixes.
        var pixdim = h.pixdim
        for i in 1...3 where pixdim[i] == 0 || !pixdim[i].isFinite { pixdim[i] = 1 }
        for i in 1...3 where pixdim[i] < 0 { pixdim[i] = -pixdim[i] }
        let qfac: Double = pixdim[0] == -1 ? -1 : 1

        var scaling: IntensityScaling? = nil
        if h.sclSlope != 0 && h.sclSlope.isFinite {
            guard h.sclInter.isFinite else {
                throw MedprepError(.badHeader, path: path, "scl_slope is '\(h.sclSlope)' but scl_inter is '\(h.sclInter)'; the intercept must be finite.")
            }
            scaling = IntensityScaling(slope: h.sclSlope, intercept: h.sclInter)
        }
        let valid = 0...5
        let sform = valid.contains(h.sformCode) ? h.sformCode : 0
        let qform = valid.contains(h.qformCode) ? h.qformCode : 0
        if sform != 0 {
            affine = Affine4(rowMajor: h.srow[0] + h.srow[1] + h.srow[2] + [0, 0, 0, 1])
            affineSource = .sform
        } else if qform != 0 {
            affine = try NIfTILayout.qformAffine(quatern: h.quatern, offset: h.qoffset,
                                                 zooms: Array(pixdim[1...3]), qfac: qfac, path: path)
            affineSource = .qform
        } else {
            affine = NIfTILayout.baseAffine(dims: dims, zooms: Array(pixdim[1...ndim]))
            affineSource = .pixdim
        }
        self.dims = dims
        self.spacing = Array(pixdim[1...ndim])
        self.datatype = dt
        self.voxelType = vt
        self.dataOffset = Int(off)
        self.dataBytes = bytes
        self.scaling = scaling
    }

    /// nibabel `quat2mat` + qfac on the third zoom + qoffset.
    static func qformAffine(quatern: [Double], offset: [Double], zooms: [Double], qfac: Double, path: String) throws -> Affine4 {
        let (b, c, d) = (quatern[0], quatern[1], quatern[2])
        // nibabel's fillpositive: |w2| below 3 float32 eps (the precision of the stored b, c, d)
        // is w = 0, on either side of 0. Rotations near 180 degrees, common in scanner output,
        // land there; taking the square root of a tiny positive w2 instead moves the affine by 1e-3.
        let w2 = 1 - (b * b + c * c + d * d)
        let w: Double
        if abs(w2) < 3 * Double(Float.ulpOfOne) {
            w = 0
        } else if w2 < 0 {
            throw MedprepError(.badHeader, path: path, "qform quaternion (b, c, d) = (\(b), \(c), \(d)) has norm above 1.")
        } else {
            w = w2.squareRoot()
        }
        let r = rotation(w: w, x: b, y: c, z: d)
        let s = [zooms[0], zooms[1], zooms[2] * qfac]
        var m = [Double](repeating: 0, count: 16)
        for i in 0..<3 {
            for j in 0..<3 { m[i * 4 + j] = r[i][j] * s[j] }
            m[i * 4 + 3] = offset[i]
        }
        m[15] = 1
        return Affine4(rowMajor: m)
    }

    /// Rotation matrix of a (not necessarily unit) quaternion, as nibabel's `quat2mat`.
    static func rotation(w: Double, x: Double, y: Double, z: Double) -> [[Double]] {
        let n = w * w + x * x + y * y + z * z
        if n < Double.ulpOfOne { return [[1, 0, 0], [0, 1, 0], [0, 0, 1]] }
        let s = 2 / n
        let (X, Y, Z) = (x * s, y * s, z * s)
        let (wX, wY, wZ) = (w * X, w * Y, w * Z)
        let (xX, xY, xZ) = (x * X, x * Y, x * Z)
        let (yY, yZ, zZ) = (y * Y, y * Z, z * Z)
        return [[1 - (yY + zZ), xY - wZ, xZ + wY],
                [xY + wZ, 1 - (xX + zZ), yZ - wX],
                [xZ - wY, yZ + wX, 1 - (xX + yY)]]
    }

    /// nibabel's base affine (`shape_zoom_affine` with x flipped): voxel centre at the origin.
    static func baseAffine(dims: [Int], zooms: [Double]) -> Affine4 {
        var shape = [1.0, 1.0, 1.0], z = [1.0, 1.0, 1.0]
        for i in 0..<min(3, dims.count) { shape[i] = Double(dims[i]); z[i] = zooms[i] }
        z[0] = -z[0]
        var m = Affine4.identity
        for i in 0..<3 {
            m[i, i] = z[i]
            m[i, 3] = -((shape[i] - 1) / 2) * z[i]
        }
        return m
    }
}
