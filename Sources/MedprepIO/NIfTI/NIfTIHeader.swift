import MedprepCore

/// The NIfTI-1 / NIfTI-2 header fields medprep uses, version- and byte-order-independent.
/// Parsing only decodes; `NIfTIHeaderChecks` decides whether the values are usable.
public struct NIfTIHeader: Sendable, Equatable {
    public enum Version: Int, Sendable { case nifti1 = 1, nifti2 = 2 }

    public var version: Version
    public var bigEndian: Bool
    /// True for single-file `.nii` (magic n+1 / n+2); false for `.hdr`/`.img` pairs (ni1 / ni2).
    public var singleFile: Bool
    /// dim[0...7] as stored.
    public var dim: [Int64]
    /// pixdim[0...7] as stored (pixdim[0] is qfac).
    public var pixdim: [Double]
    public var datatype: Int
    public var bitpix: Int
    public var voxOffset: Double
    public var sclSlope: Double
    public var sclInter: Double
    public var qformCode: Int
    public var sformCode: Int
    public var quatern: [Double]  // b, c, d
    public var qoffset: [Double]  // x, y, z
    public var srow: [[Double]]  // 3 rows of 4
    public var xyztUnits: Int
    public var intentCode: Int
    public var descrip: String

    public static let nifti1Size = 348
    public static let nifti2Size = 540

    /// Parses a header from the first bytes of a file. Throws on wrong size field or magic.
    public static func parse(_ b: [UInt8], path: String) throws -> NIfTIHeader {
        guard b.count >= 4 else {
            throw MedprepError(.truncated, path: path, "file is \(b.count) bytes, too short for a NIfTI header (at least 348 needed).")
        }
        let le = ByteReader(bytes: b, bigEndian: false)
        let be = ByteReader(bytes: b, bigEndian: true)
        let sizeLE = le.i32(0), sizeBE = be.i32(0)
        let version: Version
        let r: ByteReader
        switch (sizeLE, sizeBE) {
        case (348, _): (version, r) = (.nifti1, le)
        case (_, 348): (version, r) = (.nifti1, be)
        case (540, _): (version, r) = (.nifti2, le)
        case (_, 540): (version, r) = (.nifti2, be)
        default:
            throw MedprepError(.badMagic, path: path,
                               "not a NIfTI file: sizeof_hdr is '\(sizeLE)', expected 348 (NIfTI-1) or 540 (NIfTI-2).")
        }
        let size = version == .nifti1 ? nifti1Size : nifti2Size
        guard b.count >= size else {
            throw MedprepError(.truncated, path: path, "file ends after \(b.count) bytes, inside the \(size)-byte NIfTI-\(version.rawValue) header.")
        }
        return version == .nifti1 ? try parse1(r, path: path) : try parse2(r, path: path)
    }

    /// `.hdr` or `.hdr.gz`: the header half of a pair.
    private static func isPairHeaderName(_ path: String) -> Bool {
        let p = path.lowercased()
        return p.hasSuffix(".hdr") || p.hasSuffix(".hdr.gz")
    }

    private static func parse1(_ r: ByteReader, path: String) throws -> NIfTIHeader {
        let magic = r.ascii(344, 4)
        let single: Bool
        switch magic {
        case "n+1": single = true
        case "ni1": single = false
        default:
            // A 348-byte header without NIfTI magic in a .hdr file is Analyze 7.5, NIfTI-1's
            // predecessor: its orientation and scaling conventions differ, so it is refused by name.
            if isPairHeaderName(path) {
                throw MedprepError(.unsupported, path: path,
                                   "Analyze 7.5 header (sizeof_hdr 348, magic '\(printable(magic))' instead of 'ni1'): medprep reads "
                                   + "NIfTI-1 and NIfTI-2 only; convert it with nibabel, e.g. nib.save(nib.load(path), 'image.nii.gz').")
            }
            throw MedprepError(.badMagic, path: path, "NIfTI-1 magic is '\(printable(magic))', expected 'n+1' or 'ni1'.")
        }
        return NIfTIHeader(
            version: .nifti1, bigEndian: r.bigEndian, singleFile: single,
            dim: (0..<8).map { Int64(r.i16(40 + 2 * $0)) },
            pixdim: (0..<8).map { Double(r.f32(76 + 4 * $0)) },
            datatype: Int(r.i16(70)), bitpix: Int(r.i16(72)),
            voxOffset: Double(r.f32(108)), sclSlope: Double(r.f32(112)), sclInter: Double(r.f32(116)),
            qformCode: Int(r.i16(252)), sformCode: Int(r.i16(254)),
            quatern: (0..<3).map { Double(r.f32(256 + 4 * $0)) },
            qoffset: (0..<3).map { Double(r.f32(268 + 4 * $0)) },
            srow: (0..<3).map { row in (0..<4).map { Double(r.f32(280 + 16 * row + 4 * $0)) } },
            xyztUnits: Int(r.u8(123)), intentCode: Int(r.i16(68)), descrip: r.ascii(148, 80))
    }

    private static func parse2(_ r: ByteReader, path: String) throws -> NIfTIHeader {
        let magic = r.ascii(4, 8)
        let tail = Array(r.bytes[7..<12])
        let single: Bool
        switch magic {
        case "n+2": single = true
        case "ni2": single = false
        default: throw MedprepError(.badMagic, path: path, "NIfTI-2 magic is '\(printable(magic))', expected 'n+2' or 'ni2'.")
        }
        guard tail == [0, 0x0d, 0x0a, 0x1a, 0x0a] else {
            throw MedprepError(.badMagic, path: path, "NIfTI-2 magic is damaged (bytes 7-11 should be 00 0D 0A 1A 0A, as after a text-mode transfer).")
        }
        return NIfTIHeader(
            version: .nifti2, bigEndian: r.bigEndian, singleFile: single,
            dim: (0..<8).map { r.i64(16 + 8 * $0) },
            pixdim: (0..<8).map { r.f64(104 + 8 * $0) },
            datatype: Int(r.i16(12)), bitpix: Int(r.i16(14)),
            voxOffset: Double(r.i64(168)), sclSlope: r.f64(176), sclInter: r.f64(184),
            qformCode: Int(r.i32(344)), sformCode: Int(r.i32(348)),
            quatern: (0..<3).map { r.f64(352 + 8 * $0) },
            qoffset: (0..<3).map { r.f64(376 + 8 * $0) },
            srow: (0..<3).map { row in (0..<4).map { r.f64(400 + 32 * row + 8 * $0) } },
            xyztUnits: Int(r.i32(500)), intentCode: Int(r.i32(504)), descrip: r.ascii(240, 80))
    }

    static func printable(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.isASCII && $0.value >= 32 && $0.value < 127 ? Character($0) : "?" })
    }

    /// Spatial units from xyzt_units (NIfTI codes: 1 metre, 2 mm, 3 micron).
    public var spatialUnit: String {
        switch xyztUnits & 0x07 {
        case 1: "m"
        case 2: "mm"
        case 3: "um"
        default: "unknown"
        }
    }
}

/// Reads fixed-offset fields in one byte order. Offsets are within the checked header size.
struct ByteReader {
    let bytes: [UInt8]
    let bigEndian: Bool

    func u8(_ o: Int) -> UInt8 { bytes[o] }

    func raw(_ o: Int, _ n: Int) -> UInt64 {
        var v: UInt64 = 0
        if bigEndian {
            for i in 0..<n { v = v << 8 | UInt64(bytes[o + i]) }
        } else {
            for i in (0..<n).reversed() { v = v << 8 | UInt64(bytes[o + i]) }
        }
        return v
    }

    func i16(_ o: Int) -> Int16 { Int16(truncatingIfNeeded: raw(o, 2)) }
    func i32(_ o: Int) -> Int32 { Int32(truncatingIfNeeded: raw(o, 4)) }
    func i64(_ o: Int) -> Int64 { Int64(bitPattern: raw(o, 8)) }
    func f32(_ o: Int) -> Float { Float(bitPattern: UInt32(truncatingIfNeeded: raw(o, 4))) }
    func f64(_ o: Int) -> Double { Double(bitPattern: raw(o, 8)) }

    /// NUL-terminated ASCII field.
    func ascii(_ o: Int, _ n: Int) -> String {
        let field = bytes[o..<(o + n)]
        let end = field.firstIndex(of: 0) ?? field.endIndex
        return String(decoding: field[field.startIndex..<end], as: UTF8.self)
    }
}
