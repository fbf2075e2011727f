import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// `medprep synth`: synthetic datasets that exercise every path of convert and validate.
/// - synth3d: nnU-Net layout, int16 NIfTI volumes with anisotropic spacing (some stored LPS, so
///   reorientation matters) and nested ordinal shells (outer ⊃ middle ⊃ core).
/// - synth2d: RGB PNG images with grey-level masks 0/85/170/255 (ordinal grades).
/// - synth2d-colour: RGB JPEG images with colour-coded PNG masks.
/// Each folder gets a manifest.yaml. Fixed seeds: the same bytes on every run.
public enum Synth {
    public struct Options: Sendable {
        public var cases3D = 6
        public var cases2D = 8
        public var size3D = [96, 96, 24]
        public var size2D = [64, 64]
        public init() {}
    }

    public static let classNames = ["background", "outer", "middle", "core"]

    public static func write(to dir: String, options: Options = .init(), overwrite: Bool = false) throws -> [String] {
        try makeDirectory(dir)
        return [try write3D(to: dir + "/synth3d", options: options, overwrite: overwrite),
                try write2D(to: dir + "/synth2d", options: options, colour: false, overwrite: overwrite),
                try write2D(to: dir + "/synth2d-colour", options: options, colour: true, overwrite: overwrite)]
    }

    package static func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw MedprepError(.ioFailure, path: path, "cannot create directory: \(error.localizedDescription)")
        }
    }

    /// Label of a point from nested ellipsoids: the number of shells containing it.
    package static func shellLabel(_ p: (Double, Double, Double), centre: (Double, Double, Double), radii: [(Double, Double, Double)]) -> Int {
        var label = 0
        for r in radii {
            let dx = (p.0 - centre.0) / r.0, dy = (p.1 - centre.1) / r.1, dz = (p.2 - centre.2) / r.2
            if dx * dx + dy * dy + dz * dz <= 1 { label += 1 } else { break }
        }
        return label
    }

    package static func write3D(to dir: String, options: Options, overwrite: Bool) throws -> String {
        try makeDirectory(dir + "/imagesTr")
        try makeDirectory(dir + "/labelsTr")
        let (nx, ny, nzBase) = (options.size3D[0], options.size3D[1], options.size3D[2])
        for i in 0..<options.cases3D {
            var rng = SplitMix64(seed: 1000 + UInt64(i))
            let nz = nzBase + Int(rng.next() % 5)
            let sx = 0.75 + 0.1 * rng.unit(), sz = 2.5 + rng.unit()
            let lps = i % 2 == 1
            let centre = (Double(nx) * sx * (0.45 + 0.1 * rng.unit()), Double(ny) * sx * (0.45 + 0.1 * rng.unit()), Double(nz) * sz * 0.5)
            let scale = 0.8 + 0.3 * rng.unit()
            let outer = (Double(nx) * sx * 0.33 * scale, Double(ny) * sx * 0.28 * scale, Double(nz) * sz * 0.36)
            let radii = [outer, (outer.0 * 0.66, outer.1 * 0.66, outer.2 * 0.7), (outer.0 * 0.33, outer.1 * 0.33, outer.2 * 0.4)]
            var labels = [UInt8](repeating: 0, count: nx * ny * nz)
            var image = [Int16](repeating: 0, count: nx * ny * nz)
            let classMean: [Double] = [80, 300, 520, 760]
            for z in 0..<nz {
                for y in 0..<ny {
                    for x in 0..<nx {
                        // Voxel (x, y, z) in the canonical frame; LPS files store x and y reversed.
                        let px = Double(x) * sx, py = Double(y) * sx, pz = Double(z) * sz
                        let l = shellLabel((px, py, pz), centre: centre, radii: radii)
                        let bias = 1 + 0.15 * sin(px / 40) * cos(py / 55)
                        let v = classMean[l] * bias + 25 * rng.gaussian()
                        let (sxIdx, syIdx) = lps ? (nx - 1 - x, ny - 1 - y) : (x, y)
                        let idx = (z * ny + syIdx) * nx + sxIdx
                        labels[idx] = UInt8(l)
                        image[idx] = Int16(max(-1000, min(4000, v.rounded())))
                    }
                }
            }
            // World: canonical voxel (x, y, z) at (px, py, pz) mm; LPS storage flips x and y.
            var aff = Affine4.identity
            aff[0, 0] = lps ? -sx : sx; aff[1, 1] = lps ? -sx : sx; aff[2, 2] = sz
            aff[0, 3] = lps ? Double(nx - 1) * sx : 0; aff[1, 3] = lps ? Double(ny - 1) * sx : 0
            let id = String(format: "synth_%03d", i)
            let img = MedicalImage(format: .nifti1, dims: [nx, ny, nz], spacing: [sx, sx, sz], affine: aff, affineSource: .sform, voxels: .int16(image))
            let seg = MedicalImage(format: .nifti1, dims: [nx, ny, nz], spacing: [sx, sx, sz], affine: aff, affineSource: .sform, voxels: .uint8(labels))
            try NIfTIWriter.write(img, to: "\(dir)/imagesTr/\(id)_0000.nii.gz", overwrite: overwrite)
            try NIfTIWriter.write(seg, to: "\(dir)/labelsTr/\(id).nii.gz", overwrite: overwrite)
        }
        let datasetJSON = JSON.object([
            ("channel_names", .object([("0", .string("MRI"))])),
            ("labels", .object(classNames.enumerated().map { ($0.element, .int($0.offset)) })),
            ("numTraining", .int(options.cases3D)),
            ("file_ending", .string(".nii.gz")),
            ("name", .string("synth3d")),
            ("description", .string("medprep synthetic volumes: nested ordinal shells, anisotropic spacing, RAS and LPS storage")),
        ])
        try FileIO.writeAtomically(Array((datasetJSON.serialized(indent: 2) + "\n").utf8), to: dir + "/dataset.json", overwrite: overwrite)
        try FileIO.writeAtomically(Array(manifest3D.utf8), to: dir + "/manifest.yaml", overwrite: overwrite)
        return dir
    }

    package static let manifest3D = """
        # medprep manifest for the synthetic 3D dataset (nnU-Net layout, found from dataset.json).
        name: synth3d
        layout: nnunet
        labels:
          ordinal: true          # outer < middle < core: nested shells
          classes:
            - {name: background, value: 0}
            - {name: outer, value: 1}
            - {name: middle, value: 2}
            - {name: core, value: 3}
        geometry:
          orientation: RAS
          slice_axis: z
          target_spacing: [1.0, 1.0, keep]
          size: [80, 80]
          fit: pad-or-crop   # the default volumes give 72-82 px slices at 1 mm: the few larger ones lose background only
        intensity: {mode: zscore-foreground}
        maps: {sdf: true, rrw: true, convention: boundary, units: px, scales: [1, 2]}
        folds: {k: 3, seed: 0}
        shard_size: 32

        """

    package static func write2D(to dir: String, options: Options, colour: Bool, overwrite: Bool) throws -> String {
        try makeDirectory(dir + "/images")
        try makeDirectory(dir + "/masks")
        let (w, h) = (options.size2D[0], options.size2D[1])
        let greys: [UInt8] = [0, 85, 170, 255]
        let colours: [[UInt8]] = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
        for i in 0..<options.cases2D {
            var rng = SplitMix64(seed: 2000 + UInt64(i) + (colour ? 500 : 0))
            let cx = Double(w) * (0.35 + 0.3 * rng.unit()), cy = Double(h) * (0.35 + 0.3 * rng.unit())
            let r = Double(min(w, h)) * (0.25 + 0.1 * rng.unit())
            let radii = [(r, r * 0.8, 1.0), (r * 0.62, r * 0.5, 1.0), (r * 0.3, r * 0.25, 1.0)]
            var rgb = [UInt8](repeating: 0, count: w * h * 3)
            var mask = [UInt8](repeating: 0, count: w * h * (colour ? 3 : 1))
            let tint: [[Double]] = [[200, 170, 150], [190, 90, 80], [150, 40, 40], [60, 20, 20]]
            for y in 0..<h {
                for x in 0..<w {
                    let l = shellLabel((Double(x), Double(y), 0), centre: (cx, cy, 0), radii: radii)
                    for c in 0..<3 { rgb[(y * w + x) * 3 + c] = UInt8(max(0, min(255, tint[l][c] + 12 * rng.gaussian()))) }
                    if colour { for c in 0..<3 { mask[(y * w + x) * 3 + c] = colours[l][c] } } else { mask[y * w + x] = greys[l] }
                }
            }
            let id = String(format: "img_%03d", i)
            let image = MedicalImage(format: colour ? .jpeg : .png, dims: [w, h], spacing: [1, 1], channels: 3, affine: .identity, affineSource: .image2D, voxels: .uint8(rgb))
            let m = MedicalImage(format: .png, dims: [w, h], spacing: [1, 1], channels: colour ? 3 : 1, affine: .identity, affineSource: .image2D, voxels: .uint8(mask))
            if colour {
                try JPEGEncoder.write(image, to: "\(dir)/images/\(id).jpg", quality: 92, overwrite: overwrite)
            } else {
                try PNGCodec.write(image, to: "\(dir)/images/\(id).png", overwrite: overwrite)
            }
            try PNGCodec.write(m, to: "\(dir)/masks/\(id).png", overwrite: overwrite)
        }
        let classLines = colour
            ? zip(classNames, colours).map { "    - {name: \($0), colour: [\($1.map(String.init).joined(separator: ", "))]}" }
            : zip(classNames, greys).map { "    - {name: \($0), value: \($1)}" }
        let text = """
            # medprep manifest for the synthetic 2D dataset (\(colour ? "JPEG images, colour-coded PNG masks" : "PNG images, grey-level PNG masks")).
            name: \(colour ? "synth2d-colour" : "synth2d")
            cases:
              images: images/{id}.\(colour ? "jpg" : "png")
              mask: masks/{id}.png
            labels:
              ordinal: true
              classes:
            \(classLines.joined(separator: "\n"))
            geometry: {size: [\(h), \(w)], fit: pad}
            intensity: {mode: rgb-01}
            maps: {sdf: true, rrw: true, scales: [1, 2]}
            folds: {k: 4, seed: 0}
            shard_size: 16

            """
        try FileIO.writeAtomically(Array(text.utf8), to: dir + "/manifest.yaml", overwrite: overwrite)
        return dir
    }
}
