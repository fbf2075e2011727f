import MedprepCore

/// Writes single-file NIfTI-1 (`.nii`, or `.nii.gz` when the path ends in .gz or `gzip` is set),
/// little-endian, with both sform and qform set from the image affine (code 2, "aligned"),
/// so nibabel, ITK-SNAP and 3D Slicer all place the volume identically.
public enum NIfTIWriter {
    public static func write(_ image: MedicalImage, to path: String, gzip: Bool? = nil, overwrite: Bool = true) throws {
        let bytes = try encode(image, path: path)
        let compress = gzip ?? path.lowercased().hasSuffix(".gz")
        try FileIO.writeAtomically(compress ? try Gzip.compress(bytes) : bytes, to: path, overwrite: overwrite)
    }

    /// The complete `.nii` byte stream: 348-byte header, 4 zero extension bytes, voxels at 352.
    public static func encode(_ image: MedicalImage, path: String = "<memory>") throws -> [UInt8] {
        guard let dt = NIfTIDatatype.forWriting(image.voxels.type, channels: image.channels) else {
            throw MedprepError(.unsupported, path: path,
                               "cannot write \(image.voxels.type.rawValue) with \(image.channels) channels to NIfTI (1 channel, or 3 for uint8 RGB).")
        }
        guard image.dims.allSatisfy({ $0 <= Int(Int16.max) }) else {
            throw MedprepError(.tooLarge, path: path, "dims \(image.dims) exceed NIfTI-1's limit of 32767 per axis.")
        }
        var h = [UInt8](repeating: 0, count: 352)
        func put32(_ o: Int, _ v: UInt32) { for i in 0..<4 { h[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        func putI16(_ o: Int, _ v: Int) { let u = UInt16(bitPattern: Int16(v)); h[o] = UInt8(u & 0xff); h[o + 1] = UInt8(u >> 8) }
        func putF(_ o: Int, _ v: Double) { put32(o, Float(v).bitPattern) }

        put32(0, 348)
        h[38] = UInt8(ascii: "r")  // "regular", as nibabel writes
        putI16(40, image.dims.count)
        for (i, d) in image.dims.enumerated() { putI16(42 + 2 * i, d) }
        for i in image.dims.count..<7 { putI16(42 + 2 * i, 1) }
        putI16(70, dt.code)
        putI16(72, dt.bitpix)
        let q = Quaternion.fromAffine(image.affine)
        putF(76, q.qfac)
        let zooms = image.affine.columnNorms
        for i in 0..<image.dims.count {
            putF(80 + 4 * i, i < 3 ? zooms[i] : (i < image.spacing.count ? image.spacing[i] : 1))
        }
        putF(108, 352)
        putF(112, image.scaling?.slope ?? 0)
        putF(116, image.scaling?.intercept ?? 0)
        h[123] = 2 | 8  // mm, seconds
        putI16(252, NIfTIXformCode.aligned.rawValue)
        putI16(254, NIfTIXformCode.aligned.rawValue)
        putF(256, q.b); putF(260, q.c); putF(264, q.d)
        for i in 0..<3 { putF(268 + 4 * i, image.affine[i, 3]) }
        for r in 0..<3 { for c in 0..<4 { putF(280 + 16 * r + 4 * c, image.affine[r, c]) } }
        for (i, ch) in "n+1".utf8.enumerated() { h[344 + i] = ch }
        let descrip = Array("medprep".utf8)
        for (i, ch) in descrip.enumerated() { h[148 + i] = ch }

        var out = h
        out.reserveCapacity(352 + image.memoryBytes)
        image.voxels.withUnsafeBytes { out.append(contentsOf: $0) }  // little-endian host
        return out
    }
}

/// NIfTI qform quaternion of an affine's rotation (closest rotation, qfac for a reflection).
struct Quaternion {
    var b: Double, c: Double, d: Double, qfac: Double

    static func fromAffine(_ a: Affine4) -> Quaternion {
        let zooms = a.columnNorms
        var m = [[Double]](repeating: [0, 0, 0], count: 3)
        for r in 0..<3 { for c in 0..<3 { m[r][c] = a[r, c] / (zooms[c] == 0 ? 1 : zooms[c]) } }
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        var qfac = 1.0
        if det < 0 {
            qfac = -1
            for r in 0..<3 { m[r][2] = -m[r][2] }
        }
        let rot = Orientation.polarOrthogonal(m) ?? [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        var (w, x, y, z): (Double, Double, Double, Double)
        let trace = rot[0][0] + rot[1][1] + rot[2][2]
        if trace > 0 {
            let s = (trace + 1).squareRoot() * 2
            (w, x, y, z) = (s / 4, (rot[2][1] - rot[1][2]) / s, (rot[0][2] - rot[2][0]) / s, (rot[1][0] - rot[0][1]) / s)
        } else if rot[0][0] > rot[1][1] && rot[0][0] > rot[2][2] {
            let s = (1 + rot[0][0] - rot[1][1] - rot[2][2]).squareRoot() * 2
            (w, x, y, z) = ((rot[2][1] - rot[1][2]) / s, s / 4, (rot[0][1] + rot[1][0]) / s, (rot[0][2] + rot[2][0]) / s)
        } else if rot[1][1] > rot[2][2] {
            let s = (1 + rot[1][1] - rot[0][0] - rot[2][2]).squareRoot() * 2
            (w, x, y, z) = ((rot[0][2] - rot[2][0]) / s, (rot[0][1] + rot[1][0]) / s, s / 4, (rot[1][2] + rot[2][1]) / s)
        } else {
            let s = (1 + rot[2][2] - rot[0][0] - rot[1][1]).squareRoot() * 2
            (w, x, y, z) = ((rot[1][0] - rot[0][1]) / s, (rot[0][2] + rot[2][0]) / s, (rot[1][2] + rot[2][1]) / s, s / 4)
        }
        if w < 0 { (x, y, z) = (-x, -y, -z) }
        return Quaternion(b: x, c: y, d: z, qfac: qfac)
    }
}
