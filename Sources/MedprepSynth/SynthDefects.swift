import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// `medprep synth --defects`: small datasets with one defective case per validation check, so
/// `medprep validate` can be tested end to end. Each case is named after the code it must
/// yield (and yield alone); `clean-*` cases must yield nothing. Every folder gets a
/// manifest.yaml (except `defects-inferred`, which has none on purpose) and an expected.json:
/// `{"cases": {"<id>": ["<code>"], ...}, "dataset": ["<code>", ...]}`.
///
/// - defects3d: NIfTI, two image channels, ordinal classes background < outer < middle < core
///   (values 0-3) plus a declared class 'scar' (4) that no mask uses.
/// - defects2d: grey PNG images, grey-level masks 0/85/170/255 (PNG, one JPEG).
/// - defects-inferred: imagesTr/labelsTr without manifest or dataset.json (classes inferred).
public enum SynthDefects {
    public static func write(to dir: String, overwrite: Bool = false) throws -> [String] {
        try Synth.makeDirectory(dir)
        return [try write3D(to: dir + "/defects3d", overwrite: overwrite),
                try write2D(to: dir + "/defects2d", overwrite: overwrite),
                try writeInferred(to: dir + "/defects-inferred", overwrite: overwrite)]
    }

    /// Case ids of the 3D set with the code each must yield ([] for clean cases).
    public static let cases3D: [(String, [String])] = [
        ("clean-1", []), ("clean-2", []), ("clean-3", []), ("clean-4", []),
        ("image-without-mask", ["image-without-mask"]),
        ("mask-without-image", ["mask-without-image"]),
        ("image-channel-missing", ["image-channel-missing"]),
        ("unreadable-file", ["unreadable-file"]),
        ("shape-mismatch", ["shape-mismatch"]),
        ("spacing-mismatch", ["spacing-mismatch"]),
        ("origin-mismatch", ["origin-mismatch"]),
        ("direction-mismatch", ["direction-mismatch"]),
        ("qform-sform-mismatch", ["qform-sform-mismatch"]),
        ("direction-non-orthonormal", ["direction-non-orthonormal"]),
        ("slice-positions-duplicated", ["slice-positions-duplicated"]),
        ("slice-positions-irregular", ["slice-positions-irregular"]),
        ("labels-undeclared", ["labels-undeclared"]),
        ("labels-non-integer", ["labels-non-integer"]),
        ("labels-float-type", ["labels-float-type"]),
        ("mask-scaled", ["mask-scaled"]),
        ("mask-0-255", ["mask-0-255"]),
        ("image-nonfinite", ["image-nonfinite"]),
        ("mask-empty", ["mask-empty"]),
        ("class-absent", ["class-absent"]),
        ("small-component", ["small-component"]),
        ("ordinal-contact", ["ordinal-contact"]),
        ("ordinal-nesting", ["ordinal-nesting"]),
        ("ordinal-hole", ["ordinal-hole"]),
        ("intensity-outlier", ["intensity-outlier"]),
        ("duplicate-case", ["duplicate-case"]),
    ]
    public static let dataset3D = ["class-missing-dataset"]

    public static let cases2D: [(String, [String])] = [
        ("clean-1", []), ("clean-2", []), ("clean-3", []), ("clean-4", []),
        ("mask-antialiased", ["mask-antialiased"]),
        ("mask-jpeg", ["mask-jpeg"]),
        ("mask-channels", ["mask-channels"]),
        ("small-component", ["small-component"]),
        ("shape-mismatch", ["shape-mismatch"]),
        ("ordinal-contact", ["ordinal-contact"]),
    ]

    // MARK: - 3D

    package static let size3D = (40, 40, 12)
    package static let spacing3D = (1.0, 1.0, 2.5)

    /// Nested ellipsoids in voxel units around a centre: outer, middle, core.
    package static func shells3D(centre c: (Double, Double, Double)) -> [UInt8] {
        let (nx, ny, nz) = size3D
        let radii: [(Double, Double, Double)] = [(14, 12, 4.5), (9, 8, 3), (4.5, 4, 1.8)]
        var out = [UInt8](repeating: 0, count: nx * ny * nz)
        for z in 0..<nz {
            for y in 0..<ny {
                for x in 0..<nx {
                    out[(z * ny + y) * nx + x] = UInt8(Synth.shellLabel((Double(x), Double(y), Double(z)), centre: c, radii: radii))
                }
            }
        }
        return out
    }

    package static func image3D(labels: [UInt8], seed: UInt64, gain: Double = 1) -> [Int16] {
        var rng = SplitMix64(seed: seed)
        let means: [Double] = [100, 400, 700, 1000, 1200]
        return labels.map { l in Int16(max(-1000, min(30000, (means[min(Int(l), 4)] + 30 * rng.gaussian()) * gain).rounded())) }
    }

    package static func baseAffine3D() -> Affine4 {
        var a = Affine4.identity
        a[0, 0] = spacing3D.0; a[1, 1] = spacing3D.1; a[2, 2] = spacing3D.2
        a[0, 3] = -20; a[1, 3] = -20; a[2, 3] = -15
        return a
    }

    package static func volume(_ voxels: VoxelBuffer, dims: [Int] = [size3D.0, size3D.1, size3D.2], affine: Affine4,
                       scaling: IntensityScaling? = nil) -> MedicalImage {
        let zooms = affine.columnNorms.map { $0 == 0 ? 1 : $0 }
        return MedicalImage(format: .nifti1, dims: dims, spacing: zooms, affine: affine, affineSource: .sform,
                            scaling: scaling, voxels: voxels)
    }

    /// NIfTI-1 header edits (little-endian, offsets from the NIfTI-1 standard).
    package struct HeaderPatch {
        package var bytes: [UInt8]
        package mutating func f32(_ offset: Int, _ v: Double) {
            let b = Float(v).bitPattern
            for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: b >> (8 * UInt32(i))) }
        }
        package mutating func i16(_ offset: Int, _ v: Int) {
            let u = UInt16(bitPattern: Int16(v))
            bytes[offset] = UInt8(u & 0xff); bytes[offset + 1] = UInt8(u >> 8)
        }
        package func readF32(_ offset: Int) -> Double {
            var b: UInt32 = 0
            for i in 0..<4 { b |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
            return Double(Float(bitPattern: b))
        }
        package static let pixdim3 = 88, qformCode = 252, qoffsetX = 268
    }

    /// Writes `stem.nii.gz`, or `stem.nii` when the header is patched or the file truncated.
    package static func writeNIfTI(_ image: MedicalImage, stem: String, overwrite: Bool,
                           patch: ((inout HeaderPatch) -> Void)? = nil, truncateTo: Int? = nil) throws {
        if patch == nil && truncateTo == nil {
            try NIfTIWriter.write(image, to: stem + ".nii.gz", overwrite: overwrite)
            return
        }
        var p = HeaderPatch(bytes: try NIfTIWriter.encode(image, path: stem + ".nii"))
        patch?(&p)
        let bytes = truncateTo.map { Array(p.bytes.prefix($0)) } ?? p.bytes
        try FileIO.writeAtomically(bytes, to: stem + ".nii", overwrite: overwrite)
    }

    package static func write3D(to dir: String, overwrite: Bool) throws -> String {
        try Synth.makeDirectory(dir + "/imagesTr")
        try Synth.makeDirectory(dir + "/labelsTr")
        let (nx, ny, nz) = size3D
        let centre = (20.0, 20.0, 6.0)
        let base = baseAffine3D()
        let cleanLabels = shells3D(centre: centre)
        func at(_ x: Int, _ y: Int, _ z: Int) -> Int { (z * ny + y) * nx + x }
        let (cx, cy, cz) = (20, 20, 6)

        for (index, (id, _)) in cases3D.enumerated() {
            var labels = cleanLabels
            var seed = 5000 + UInt64(index)
            var imageAffine = base, maskAffine = base
            var gain = 1.0
            var maskDims = [nx, ny, nz]
            var imagePatch: ((inout HeaderPatch) -> Void)? = nil
            var maskPatch: ((inout HeaderPatch) -> Void)? = nil
            var maskVoxels: VoxelBuffer? = nil
            var maskScaling: IntensityScaling? = nil
            var floatImage = false
            var truncate = false
            var writeImage = true, writeMask = true, writeChannel1 = true

            switch id {
            case "clean-1": break
            case "clean-2", "clean-3", "clean-4":
                let shift = Double(index - 1)
                labels = shells3D(centre: (centre.0 + shift, centre.1 - shift, centre.2))
            case "image-without-mask": writeMask = false
            case "mask-without-image": writeImage = false; writeChannel1 = false
            case "image-channel-missing": writeChannel1 = false
            case "unreadable-file": truncate = true
            case "shape-mismatch":
                maskDims = [nx, ny, nz - 2]
                labels = Array(labels.prefix(nx * ny * (nz - 2)))
            case "spacing-mismatch": maskAffine[2, 2] = 3.0
            case "origin-mismatch": maskAffine[0, 3] += 4
            case "direction-mismatch":
                let t = 8.0 * Double.pi / 180
                for (r, row) in [[cos(t), -sin(t)], [sin(t), cos(t)]].enumerated() {
                    maskAffine[r, 0] = row[0] * spacing3D.0
                    maskAffine[r, 1] = row[1] * spacing3D.1
                }
            case "qform-sform-mismatch":
                imagePatch = { p in p.f32(HeaderPatch.qoffsetX, p.readF32(HeaderPatch.qoffsetX) + 10) }
            case "direction-non-orthonormal":
                imageAffine[0, 1] = 0.3; maskAffine[0, 1] = 0.3
                imagePatch = { p in p.i16(HeaderPatch.qformCode, 0) }
                maskPatch = imagePatch
            case "slice-positions-duplicated":
                imageAffine[2, 2] = 0; maskAffine[2, 2] = 0
                imagePatch = { p in p.i16(HeaderPatch.qformCode, 0) }
                maskPatch = imagePatch
            case "slice-positions-irregular":
                imagePatch = { p in p.f32(HeaderPatch.pixdim3, 5.0); p.i16(HeaderPatch.qformCode, 0) }
                maskPatch = imagePatch
            case "labels-undeclared":
                for z in cz...(cz + 1) { for y in (cy - 1)...(cy + 1) { for x in (cx + 10)...(cx + 12) { labels[at(x, y, z)] = 7 } } }
            case "labels-non-integer":
                var f = labels.map { Float($0) }
                for z in (cz - 2)...(cz + 1) { for y in (cy - 4)...(cy + 3) { for x in (cx - 4)...(cx + 3) { f[at(x, y, z)] = 1.5 } } }
                maskVoxels = .float32(f)
            case "labels-float-type": maskVoxels = .float32(labels.map { Float($0) })
            case "mask-scaled":
                maskVoxels = .uint8(labels.map { $0 * 2 })
                maskScaling = IntensityScaling(slope: 0.5, intercept: 0)
            case "mask-0-255": maskVoxels = .uint8(labels.map { $0 > 0 ? 255 : 0 })
            case "image-nonfinite": floatImage = true
            case "mask-empty": labels = [UInt8](repeating: 0, count: labels.count)
            case "class-absent": labels = labels.map { $0 == 3 ? 2 : $0 }
            case "small-component":
                labels[at(2, 2, cz)] = 1; labels[at(3, 2, cz)] = 1
            case "ordinal-contact":
                // The middle layer is missing on the +x side, so core meets outer there.
                for z in 0..<nz { for y in 0..<ny { for x in (cx + 2)..<nx where labels[at(x, y, z)] == 2 { labels[at(x, y, z)] = 1 } } }
            case "ordinal-nesting":
                // A core region inside the outer layer with no middle layer around it.
                for z in cz...(cz + 1) { for y in (cy - 1)...(cy + 1) { for x in (cx + 11)...(cx + 13) { labels[at(x, y, z)] = 3 } } }
            case "ordinal-hole":
                labels[at(cx + 11, cy, cz)] = 0; labels[at(cx + 12, cy, cz)] = 0
            case "intensity-outlier": gain = 12
            case "duplicate-case": seed = 5000  // clean-1's seed and labels
            default: break
            }
            let stemImage = "\(dir)/imagesTr/\(id)"
            let image16 = image3D(labels: id == "shape-mismatch" ? cleanLabels : (id == "mask-0-255" || id == "mask-empty" ? cleanLabels : labels),
                                  seed: seed, gain: gain)
            if writeImage {
                var img = volume(.int16(image16), affine: imageAffine)
                if floatImage {
                    var f = image16.map { Float($0) }
                    for z in cz...(cz + 1) { for y in 4...6 { for x in 4...6 { f[at(x, y, z)] = .nan } } }
                    f[at(30, 30, 2)] = .infinity
                    img = volume(.float32(f), affine: imageAffine)
                }
                try writeNIfTI(img, stem: stemImage + "_0000", overwrite: overwrite, patch: imagePatch,
                               truncateTo: truncate ? 352 + image16.count : nil)
            }
            if writeChannel1 {
                let ch1 = image16.map { Int16(clamping: Int($0) / 2 + 50) }
                try writeNIfTI(volume(.int16(ch1), affine: imageAffine), stem: stemImage + "_0001", overwrite: overwrite, patch: imagePatch)
            }
            if writeMask {
                let m = volume(maskVoxels ?? .uint8(labels), dims: maskDims, affine: maskAffine, scaling: maskScaling)
                try writeNIfTI(m, stem: "\(dir)/labelsTr/\(id)", overwrite: overwrite, patch: maskPatch)
            }
        }
        let manifest = """
            # medprep validate fixture: one defective case per check (see expected.json).
            name: defects3d
            cases:
              images: ["imagesTr/{id}_0000.nii*", "imagesTr/{id}_0001.nii*"]
              mask: "labelsTr/{id}.nii*"
            labels:
              ordinal: true
              classes:
                - {name: background, value: 0}
                - {name: outer, value: 1}
                - {name: middle, value: 2}
                - {name: core, value: 3}
                - {name: scar, value: 4}
            geometry: {slice_axis: z}

            """
        try FileIO.writeAtomically(Array(manifest.utf8), to: dir + "/manifest.yaml", overwrite: overwrite)
        try writeExpected(dir, cases: cases3D, dataset: dataset3D, overwrite: overwrite)
        return dir
    }

    package static func writeExpected(_ dir: String, cases: [(String, [String])], dataset: [String], overwrite: Bool) throws {
        let json = JSON.object([
            ("cases", .object(cases.map { ($0.0, .array($0.1.map { .string($0) })) })),
            ("dataset", .array(dataset.map { .string($0) })),
        ])
        try FileIO.writeAtomically(Array((json.serialized(indent: 2) + "\n").utf8), to: dir + "/expected.json", overwrite: overwrite)
    }

    // MARK: - 2D

    package static let size2D = (48, 48)
    package static let greys: [UInt8] = [0, 85, 170, 255]

    package static func shells2D(centre c: (Double, Double)) -> [UInt8] {
        let (w, h) = size2D
        let radii: [(Double, Double, Double)] = [(16, 14, 1), (10, 9, 1), (5, 4.5, 1)]
        var out = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w { out[y * w + x] = UInt8(Synth.shellLabel((Double(x), Double(y), 0), centre: (c.0, c.1, 0), radii: radii)) } }
        return out
    }

    package static func write2D(to dir: String, overwrite: Bool) throws -> String {
        try Synth.makeDirectory(dir + "/images")
        try Synth.makeDirectory(dir + "/masks")
        let (w, h) = size2D
        for (index, (id, _)) in cases2D.enumerated() {
            let shift = Double(index % 4) - 1.5
            var labels = shells2D(centre: (24 + shift, 24 - shift / 2))
            var rng = SplitMix64(seed: 7000 + UInt64(index))
            let means: [Double] = [40, 100, 160, 220]
            let pixels = labels.map { UInt8(max(0, min(255, means[Int($0)] + 8 * rng.gaussian()).rounded())) }
            var mask = labels.map { greys[Int($0)] }
            var maskDims = [w, h]
            var maskChannels = 1
            var jpeg = false
            switch id {
            case "mask-antialiased":
                // Background pixels next to the outer class get a blended grey, as a drawing
                // program's anti-aliased brush leaves them.
                var out = mask
                for y in 1..<(h - 1) {
                    for x in 1..<(w - 1) where labels[y * w + x] == 0 {
                        let n = [labels[y * w + x - 1], labels[y * w + x + 1], labels[(y - 1) * w + x], labels[(y + 1) * w + x]]
                        if n.contains(1) { out[y * w + x] = 42 }
                    }
                }
                mask = out
            case "mask-jpeg": jpeg = true
            case "mask-channels":
                mask = mask.flatMap { [$0, $0, $0] }
                maskChannels = 3
            case "small-component":
                labels[2 * w + 2] = 1; labels[3 * w + 3] = 1  // diagonal pair: one 8-connected speck
                mask = labels.map { greys[Int($0)] }
            case "shape-mismatch":
                maskDims = [w, h - 4]
                mask = Array(mask.prefix(w * (h - 4)))
            case "ordinal-contact":
                for i in labels.indices where labels[i] == 2 && i % w > 26 { labels[i] = 1 }
                mask = labels.map { greys[Int($0)] }
            default: break
            }
            let image = MedicalImage(format: .png, dims: [w, h], spacing: [1, 1], affine: .identity, affineSource: .image2D,
                                     voxels: .uint8(pixels))
            try PNGCodec.write(image, to: "\(dir)/images/\(id).png", overwrite: overwrite)
            let m = MedicalImage(format: jpeg ? .jpeg : .png, dims: maskDims, spacing: [1, 1], channels: maskChannels,
                                 affine: .identity, affineSource: .image2D, voxels: .uint8(mask))
            if jpeg {
                try JPEGEncoder.write(m, to: "\(dir)/masks/\(id).jpg", quality: 95, overwrite: overwrite)
            } else {
                try PNGCodec.write(m, to: "\(dir)/masks/\(id).png", overwrite: overwrite)
            }
        }
        let manifest = """
            # medprep validate fixture (2D): one defective case per check (see expected.json).
            name: defects2d
            cases:
              images: images/{id}.png
              mask: "masks/{id}.*"
            labels:
              ordinal: true
              classes:
                - {name: background, value: 0}
                - {name: outer, value: 85}
                - {name: middle, value: 170}
                - {name: core, value: 255}

            """
        try FileIO.writeAtomically(Array(manifest.utf8), to: dir + "/manifest.yaml", overwrite: overwrite)
        try writeExpected(dir, cases: cases2D, dataset: [], overwrite: overwrite)
        return dir
    }

    // MARK: - no manifest

    package static func writeInferred(to dir: String, overwrite: Bool) throws -> String {
        try Synth.makeDirectory(dir + "/imagesTr")
        try Synth.makeDirectory(dir + "/labelsTr")
        for i in 0..<3 {
            let labels = shells3D(centre: (20 + Double(i), 20, 6)).map { min($0, 2) }
            let id = "case-\(i + 1)"
            try NIfTIWriter.write(volume(.int16(image3D(labels: labels, seed: 9000 + UInt64(i))), affine: baseAffine3D()),
                                  to: "\(dir)/imagesTr/\(id)_0000.nii.gz", overwrite: overwrite)
            try NIfTIWriter.write(volume(.uint8(labels), affine: baseAffine3D()), to: "\(dir)/labelsTr/\(id).nii.gz", overwrite: overwrite)
        }
        try writeExpected(dir, cases: (1...3).map { ("case-\($0)", []) }, dataset: ["labels-inferred"], overwrite: overwrite)
        return dir
    }
}

#if canImport(Glibc)
import Glibc
#endif
