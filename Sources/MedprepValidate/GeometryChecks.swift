import MedprepCore
import MedprepIO

#if canImport(Glibc)
import Glibc
import MedprepDataset
#endif

/// The geometry of one file as validation needs it: read from the NIfTI header alone (no voxel
/// data), or from a decoded 2D image.
package struct FileGeometry: Sendable {
    package var path: String
    /// First three grid sizes, padded with 1.
    package var dims: [Int]
    /// Product of dims 4...7.
    package var frames: Int
    package var channels: Int
    /// pixdim of the first three axes (after nibabel's repairs); [1, 1, 1] for 2D images.
    package var spacing: [Double]
    package var affine: Affine4
    package var affineSource: AffineSource
    package var voxelType: VoxelType
    package var datatype: String
    package var scaling: IntensityScaling?
    package var format: ImageFormat?
    package var header: NIfTIHeader?

    /// A 2D image (PNG/JPEG), or a NIfTI whose third axis has one voxel.
    package var is2D: Bool { dims[2] == 1 }

    package var dimsText: String { (is2D ? Array(dims.prefix(2)) : dims).map(String.init).joined(separator: "x") + (frames > 1 ? "x\(frames)" : "") }

    /// Header-only geometry of a NIfTI file. Uncompressed `.nii` files are not read past the
    /// header; gzipped ones are inflated only as far as the header.
    /// With `checkSize`, also refuses files too short for the voxel data the header announces
    /// (uncompressed: the file size; gzip: the trailer's uncompressed size), so a truncated
    /// file is caught without reading its voxels.
    package static func nifti(path: String, checkSize: Bool = false) throws -> FileGeometry {
        let header: NIfTIHeader, layout: NIfTILayout
        if path.lowercased().hasSuffix(".nii") {
            let handle = try FileIO.ReadHandle(path)
            let bytes = try handle.read(count: min(handle.size, NIfTIHeader.nifti2Size), at: 0)
            header = try NIfTIHeader.parse(bytes, path: path)
            layout = try NIfTILayout(header: header, path: path)
            if checkSize && handle.size < layout.dataOffset + layout.dataBytes {
                throw MedprepError(.truncated, path: path,
                                   "file holds \(max(0, handle.size - layout.dataOffset)) bytes of voxel data after vox_offset \(layout.dataOffset), but the header needs \(layout.dataBytes) (truncated file?).")
            }
        } else {
            (header, layout) = try NIfTIReader.readHeader(path: path)
            let needed = layout.dataOffset + layout.dataBytes
            if checkSize && header.singleFile && path.lowercased().hasSuffix(".gz") && needed < (1 << 32) {
                let handle = try FileIO.ReadHandle(path)
                if handle.size >= 4 {
                    let t = try handle.read(count: 4, at: handle.size - 4)
                    let isize = Int(t[0]) | Int(t[1]) << 8 | Int(t[2]) << 16 | Int(t[3]) << 24
                    if isize < needed {
                        throw MedprepError(.truncated, path: path,
                                           "the gzip trailer says the file inflates to \(isize) bytes, but the header needs \(needed) (truncated or corrupt file?).")
                    }
                }
            }
        }
        let d = layout.dims
        return FileGeometry(
            path: path, dims: (0..<3).map { $0 < d.count ? d[$0] : 1 },
            frames: d.count > 3 ? d[3...].reduce(1, *) : 1, channels: layout.datatype.channels,
            spacing: (0..<3).map { $0 < layout.spacing.count ? layout.spacing[$0] : 1 },
            affine: layout.affine, affineSource: layout.affineSource, voxelType: layout.voxelType,
            datatype: layout.datatype.name, scaling: layout.scaling, format: nil, header: header)
    }

    package static func of(image: MedicalImage, path: String) -> FileGeometry {
        let sd = image.spatialDims
        return FileGeometry(
            path: path, dims: sd, frames: image.frameCount, channels: image.channels,
            spacing: (0..<3).map { $0 < image.spacing.count ? image.spacing[$0] : 1 },
            affine: image.affine, affineSource: image.affineSource, voxelType: image.voxels.type,
            datatype: image.sourceDatatype, scaling: image.scaling, format: image.format, header: nil)
    }
}

/// Geometry checks: within one file (qform vs sform, shear, degenerate or inconsistent slice
/// grid) and between an image and its mask (shape, spacing, origin, direction).
package enum GeometryChecks {
    /// A file's name without its folders, for messages (the finding's `file` keeps the path).
    package static func base(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    package static func column(_ a: Affine4, _ c: Int) -> [Double] { (0..<3).map { a[$0, c] } }
    package static func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    package static func origin(_ a: Affine4) -> [Double] { (0..<3).map { a[$0, 3] } }

    /// Angle in degrees between two vectors (0 when either is zero).
    package static func angle(_ a: [Double], _ b: [Double]) -> Double {
        let na = norm(a), nb = norm(b)
        guard na > 0, nb > 0 else { return 0 }
        let c = max(-1, min(1, zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (na * nb)))
        return acos(c) * 180 / Double.pi
    }

    package static func distance(_ a: [Double], _ b: [Double]) -> Double { norm(zip(a, b).map { $0 - $1 }) }

    package static func fmt(_ v: Double, _ digits: Int = 3) -> String {
        guard v.isFinite else { return "\(v)" }
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        return formatShort((v * p).rounded() / p)
    }

    package static func vec(_ v: [Double]) -> String { "(" + v.map { fmt($0) }.joined(separator: ", ") + ")" }

    /// The qform affine of a header as nibabel builds it (quaternion, pixdim, qfac, qoffset).
    package static func qformAffine(_ h: NIfTIHeader) -> Affine4 {
        var pix = Array(h.pixdim[1...3])
        for i in 0..<3 where pix[i] == 0 || !pix[i].isFinite { pix[i] = 1 }
        for i in 0..<3 where pix[i] < 0 { pix[i] = -pix[i] }
        let qfac: Double = h.pixdim[0] == -1 ? -1 : 1
        let (b, c, d) = (h.quatern[0], h.quatern[1], h.quatern[2])
        let w = max(0, 1 - (b * b + c * c + d * d)).squareRoot()
        let n = w * w + b * b + c * c + d * d
        var r: [[Double]] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        if n >= Double.ulpOfOne {
            let s = 2 / n
            let (X, Y, Z) = (b * s, c * s, d * s)
            let (wX, wY, wZ) = (w * X, w * Y, w * Z)
            let (xX, xY, xZ) = (b * X, b * Y, b * Z)
            let (yY, yZ, zZ) = (c * Y, c * Z, d * Z)
            r = [[1 - (yY + zZ), xY - wZ, xZ + wY], [xY + wZ, 1 - (xX + zZ), yZ - wX], [xZ - wY, yZ + wX, 1 - (xX + yY)]]
        }
        let zooms = [pix[0], pix[1], pix[2] * qfac]
        var m = Affine4.identity
        for i in 0..<3 {
            for j in 0..<3 { m[i, j] = r[i][j] * zooms[j] }
            m[i, 3] = h.qoffset[i]
        }
        return m
    }

    package static func sformAffine(_ h: NIfTIHeader) -> Affine4 {
        Affine4(rowMajor: h.srow[0] + h.srow[1] + h.srow[2] + [0, 0, 0, 1])
    }

    /// Checks of one file on its own.
    package static func fileChecks(_ g: FileGeometry, caseID: String, options: ValidationOptions) -> [Finding] {
        var out: [Finding] = []
        let axes = g.is2D ? 2 : 3
        let names = ["x", "y", "z"]
        // qform vs sform, when both are set.
        if let h = g.header, (1...5).contains(h.qformCode), (1...5).contains(h.sformCode) {
            let q = qformAffine(h), s = sformAffine(h)
            let dOrigin = distance(origin(q), origin(s))
            let dAngle = (0..<3).map { angle(column(q, $0), column(s, $0)) }.max() ?? 0
            let dZoom = (0..<3).map { c -> Double in
                let a = norm(column(q, c)), b = norm(column(s, c))
                return max(a, b) > 0 ? abs(a - b) / max(a, b) : 0
            }.max() ?? 0
            if dOrigin > options.tolerances.originMM || dAngle > options.tolerances.directionDegrees || dZoom > options.tolerances.spacingRelative {
                out.append(Finding(
                    .qformSformMismatch, case: caseID, file: g.path,
                    "qform (code \(h.qformCode)) and sform (code \(h.sformCode)) disagree: origins \(fmt(dOrigin)) mm apart, axes up to \(fmt(dAngle))° apart, voxel sizes up to \(fmt(dZoom * 100, 2))% apart; readers that prefer the qform (ITK, SimpleITK) place this file differently from nibabel and medprep (sform).",
                    fix: "rewrite the header with one affine for both, e.g. nibabel: img.set_qform(img.get_sform()) and save",
                    details: [("origin_difference_mm", .number(dOrigin)), ("angle_degrees", .number(dAngle)),
                              ("zoom_relative_difference", .number(dZoom)),
                              ("qform", .array(q.rows.prefix(3).map { .numbers($0) })),
                              ("sform", .array(s.rows.prefix(3).map { .numbers($0) }))],
                    magnitude: dOrigin + dAngle))
            }
        }
        guard g.affineSource != .image2D else { return out }
        // Degenerate slice grid: an axis with more than one voxel whose affine column has no length.
        var degenerate = false
        for c in 0..<axes where g.dims[c] > 1 && norm(column(g.affine, c)) < 1e-6 {
            degenerate = true
            out.append(Finding(
                .slicePositionsDuplicated, case: caseID, file: g.path,
                "the affine's \(names[c]) column is zero, so all \(g.dims[c]) positions along \(names[c]) map to the same point in space.",
                fix: "rewrite the affine (sform) with the real voxel spacing along \(names[c])",
                details: [("axis", .int(c)), ("count", .int(g.dims[c])), ("column", .numbers(column(g.affine, c)))],
                magnitude: Double(g.dims[c])))
        }
        if degenerate { return out }
        // Shear: the affine's axes are not perpendicular.
        var worst = 0.0, pair = (0, 1)
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let dev = abs(90 - angle(column(g.affine, a), column(g.affine, b)))
            if dev > worst { worst = dev; pair = (a, b) }
        }
        if worst > options.tolerances.directionDegrees {
            let ang = angle(column(g.affine, pair.0), column(g.affine, pair.1))
            out.append(Finding(
                .directionNonOrthonormal, case: caseID, file: g.path,
                "the affine's \(names[pair.0]) and \(names[pair.1]) axes meet at \(fmt(ang, 2))°, not 90° (a sheared grid); ITK and SimpleITK refuse or silently orthogonalise such files.",
                fix: "resample to an orthonormal grid, or if the shear is a header error, rewrite the sform with perpendicular axes",
                details: [("axes", .ints([pair.0, pair.1])), ("angle_degrees", .number(ang)), ("deviation_degrees", .number(worst))],
                magnitude: worst))
        }
        // pixdim against the spacing the affine implies (only an sform can disagree with pixdim).
        if g.affineSource == .sform {
            for c in 0..<axes where g.dims[c] > 1 {
                let fromAffine = norm(column(g.affine, c)), stated = g.spacing[c]
                let rel = abs(fromAffine - stated) / max(stated, 1e-12)
                if rel > max(options.tolerances.spacingRelative, 1e-4) {
                    out.append(Finding(
                        .slicePositionsIrregular, case: caseID, file: g.path,
                        "pixdim says \(fmt(stated)) mm along \(names[c]) but the sform places consecutive positions \(fmt(fromAffine)) mm apart; tools that use pixdim and tools that use the affine disagree on where the slices are.",
                        fix: "make pixdim[\(c + 1)] equal to the length of the sform's \(names[c]) column (\(fmt(fromAffine)) mm)",
                        details: [("axis", .int(c)), ("pixdim", .number(stated)), ("affine_spacing", .number(fromAffine))],
                        magnitude: rel))
                }
            }
        }
        return out
    }

    /// Checks between a reference file (the first image) and another file of the same case.
    /// Convert refuses a case on the first error these return (`CaseProcessor.checkGrid`).
    package static func pairChecks(reference r: FileGeometry, other o: FileGeometry, otherIsMask: Bool, caseID: String,
                           tolerances: GeometryTolerances) -> [Finding] {
        var out: [Finding] = []
        let what = otherIsMask ? "mask" : "image channel"
        let sameShape = r.dims == o.dims && (!otherIsMask || o.frames == 1)
        if !sameShape {
            let framesNote = otherIsMask && o.frames > 1 ? " (the mask has \(o.frames) frames; a mask must have one)" : ""
            out.append(Finding(
                .shapeMismatch, case: caseID, file: o.path,
                "image '\(base(r.path))' is \(r.dimsText) but \(what) '\(base(o.path))' is \(o.dimsText)\(framesNote).",
                fix: "resample or re-export the \(what) on the image's grid (\(r.dimsText))",
                details: [("image_dims", .ints(r.dims)), ("other_dims", .ints(o.dims)), ("other_frames", .int(o.frames))],
                magnitude: Double(abs(r.dims.reduce(1, *) - o.dims.reduce(1, *)))))
        }
        let axes = r.is2D && o.is2D ? 2 : 3
        let rel = (0..<axes).map { abs(r.spacing[$0] - o.spacing[$0]) / max(r.spacing[$0], o.spacing[$0], 1e-12) }.max() ?? 0
        if rel > tolerances.spacingRelative {
            out.append(Finding(
                .spacingMismatch, case: caseID, file: o.path,
                "image spacing is \(vec(Array(r.spacing.prefix(axes)))) mm but the \(what)'s is \(vec(Array(o.spacing.prefix(axes)))) mm.",
                fix: "copy the image's spacing into the \(what) header if the grids really coincide, otherwise resample the \(what)",
                details: [("image_spacing", .numbers(r.spacing)), ("other_spacing", .numbers(o.spacing)), ("relative_difference", .number(rel))],
                magnitude: rel))
        }
        guard r.affineSource != .image2D || o.affineSource != .image2D else { return out }
        let dOrigin = distance(origin(r.affine), origin(o.affine))
        if dOrigin > tolerances.originMM {
            out.append(Finding(
                .originMismatch, case: caseID, file: o.path,
                "image origin is \(vec(origin(r.affine))) mm but the \(what)'s is \(vec(origin(o.affine))) mm (\(fmt(dOrigin)) mm apart).",
                fix: "copy the image's affine into the \(what) if only the header is wrong, otherwise resample the \(what) onto the image",
                details: [("image_origin", .numbers(origin(r.affine))), ("other_origin", .numbers(origin(o.affine))), ("distance_mm", .number(dOrigin))],
                magnitude: dOrigin))
        }
        let dAngle = (0..<3).map { angle(column(r.affine, $0), column(o.affine, $0)) }.max() ?? 0
        if dAngle > tolerances.directionDegrees {
            out.append(Finding(
                .directionMismatch, case: caseID, file: o.path,
                "image axes are \(Orientation.code(r.affine)) and the \(what)'s \(Orientation.code(o.affine)); corresponding axes are up to \(fmt(dAngle, 2))° apart.",
                fix: "copy the image's affine into the \(what) if only the header is wrong, otherwise resample the \(what) onto the image",
                details: [("angle_degrees", .number(dAngle)),
                          ("image_affine", .array(r.affine.rows.prefix(3).map { .numbers($0) })),
                          ("other_affine", .array(o.affine.rows.prefix(3).map { .numbers($0) }))],
                magnitude: dAngle))
        }
        return out
    }
}
