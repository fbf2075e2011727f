import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// `medprep manifest init DIR`: a starting manifest inferred from a folder. It recognises an
/// nnU-Net dataset (dataset.json), otherwise pairs an image folder with a mask folder (a folder
/// whose name says mask/label/gt/seg/annotation), or `_gt`/`_mask`/`_seg` suffixed files beside
/// their images; classes come from the values (or colours) found in up to 20 masks.
public enum ManifestInit {
    public struct Inferred: Sendable {
        public var yaml: String
        public var notes: [String]
    }

    package static let maskWords = ["mask", "label", "gt", "seg", "annotation", "annot", "truth"]

    public static func infer(root: String) throws -> Inferred {
        let name = (root as NSString).lastPathComponent
        if FileIO.exists(root + "/dataset.json") {
            let nn = try NNUNetDataset.load(root: root)
            let disc = try CaseDiscovery.discover(root: root, spec: nn.caseSpec)
            var notes = ["nnU-Net layout: \(disc.cases.count) cases from dataset.json"]
            let (geometry, intensity) = try geometryBlock(disc.cases.first.map { $0.images[0] }, notes: &notes)
            return Inferred(yaml: """
                # Written by 'medprep manifest init' from \(root)/dataset.json; review before converting.
                name: \(name)
                layout: nnunet
                labels:
                  ordinal: false   # set true when class order is a severity or depth order
                  classes:
                \(nn.labels.classes.map { "    - {name: \($0.name), value: \($0.value ?? 0)}" }.joined(separator: "\n"))
                \(geometry)
                intensity: {mode: \(intensity)}   # 'ct' for CT
                \(mapsLine)
                folds: {k: 5, seed: 0}
                shard_size: 128

                """, notes: notes).withStoragePlan(root: root)
        }
        let files = try CaseDiscovery.listFiles(root).filter { isImageFile($0) }
        guard !files.isEmpty else {
            throw MedprepError(.invalidArgument, path: root, "has no NIfTI, PNG or JPEG files to build a manifest from.")
        }
        let (imageT, maskT) = try templates(files, root: root)
        let disc = try CaseDiscovery.discover(root: root, spec: CaseSpec(images: [imageT], mask: maskT))
        guard !disc.cases.isEmpty else {
            throw MedprepError(.invalidArgument, path: root, "could not pair images with masks (templates '\(imageT)' and '\(maskT)' match no case).")
        }
        var notes = ["templates: images '\(imageT)', mask '\(maskT)': \(disc.cases.count) cases, \(disc.problems.count) unpaired files"]
        let classes = try inferClasses(disc.cases.prefix(20).compactMap(\.mask), notes: &notes)
        let (geometry, intensity) = try geometryBlock(disc.cases[0].images[0], notes: &notes)
        return Inferred(yaml: """
            # Written by 'medprep manifest init' from \(root); review before converting.
            name: \(name)
            cases:
              images: "\(imageT)"
              mask: "\(maskT)"
            labels:
              ordinal: false   # set true when class order is a severity or depth order
              classes:
            \(classes.joined(separator: "\n"))
            \(geometry)
            intensity: {mode: \(intensity)}
            \(mapsLine)
            folds: {k: 5, seed: 0}
            shard_size: 128

            """, notes: notes).withStoragePlan(root: root)
    }

    package static let mapsLine = "maps: {sdf: true, rrw: true, convention: boundary, units: px, scales: [1, 2], storage: online}"

    package static func isImageFile(_ f: String) -> Bool {
        let l = f.lowercased()
        return NIfTIReader.handles(l) || l.hasSuffix(".png") || l.hasSuffix(".jpg") || l.hasSuffix(".jpeg")
    }

    package static func isMaskName(_ s: String) -> Bool {
        let l = s.lowercased()
        return maskWords.contains { l.contains($0) }
    }

    package static func ext(_ f: String) -> String {
        let l = f.lowercased()
        for e in [".nii.gz", ".hdr.gz", ".nii", ".png", ".jpg", ".jpeg"] where l.hasSuffix(e) { return String(f.suffix(e.count)) }
        return ""
    }

    /// Image and mask templates: mask folder beside image folder, or mask suffix beside images.
    package static func templates(_ files: [String], root: String) throws -> (String, String) {
        let byDir = Dictionary(grouping: files) { ($0 as NSString).deletingLastPathComponent }
        let maskDirs = byDir.keys.filter { isMaskName(($0 as NSString).lastPathComponent) }.sorted()
        let imageDirs = byDir.keys.filter { !isMaskName(($0 as NSString).lastPathComponent) }.sorted()
        if let md = maskDirs.first, let id = imageDirs.max(by: { byDir[$0]!.count < byDir[$1]!.count }) {
            let imgExt = ext(byDir[id]![0]), maskExt = ext(byDir[md]![0])
            let prefix = { (d: String) in d.isEmpty ? "" : d + "/" }
            return (prefix(id) + "{id}" + imgExt, prefix(md) + "{id}" + maskExt)
        }
        // Same folder: files named like x_gt.nii.gz / x_mask.png next to x.nii.gz / x.png.
        for f in files {
            let e = ext(f)
            let stem = String(f.dropLast(e.count))
            for w in ["_gt", "_mask", "_seg", "_label", "-mask", "-label"] where stem.lowercased().hasSuffix(w) {
                let dir = (f as NSString).deletingLastPathComponent
                let imgExt = files.first { $0 != f && ext($0) != "" && !isMaskName(($0 as NSString).lastPathComponent) }.map(ext) ?? e
                let prefix = dir.isEmpty ? "" : dir + "/"
                return (prefix + "{id}" + imgExt, prefix + "{id}" + String(stem.suffix(w.count)) + e)
            }
        }
        throw MedprepError(.invalidArgument, path: root,
                           "cannot tell images from masks: put masks in a folder named like 'masks' or 'labels', or name them '<id>_mask.png'.")
    }

    /// One class line per distinct value (or colour) seen in the masks.
    package static func inferClasses(_ masks: [String], notes: inout [String]) throws -> [String] {
        var values = Set<Int>()
        var colours = Set<[Int]>()
        for p in masks {
            let m = try ImageReader.read(path: p)
            if m.channels >= 3, case .uint8(let px) = m.voxels {
                for i in 0..<m.voxelCount { colours.insert([Int(px[i * m.channels]), Int(px[i * m.channels + 1]), Int(px[i * m.channels + 2])]) }
                if colours.count > 64 { break }
            } else {
                m.voxels.withDoubles { for v in $0 where v == v.rounded() && abs(v) < 1e9 { values.insert(Int(v)) } }
                if values.count > 256 { break }
            }
        }
        if !colours.isEmpty {
            if colours.count > 32 { notes.append("masks hold \(colours.count) colours: JPEG or anti-aliased masks? run 'medprep validate'") }
            return colours.sorted { $0.lexicographicallyPrecedes($1) }.prefix(32).enumerated().map { i, c in
                "    - {name: class_\(i), colour: [\(c.map(String.init).joined(separator: ", "))]}"
            }
        }
        if values.count > 32 { notes.append("masks hold \(values.count) distinct values: JPEG or anti-aliased masks? run 'medprep validate'") }
        if values.sorted() == [0, 255] { notes.append("0/255 mask: class 'class_1' is grey level 255") }
        return values.sorted().prefix(64).enumerated().map { i, v in "    - {name: \(i == 0 && v == 0 ? "background" : "class_\(i)"), value: \(v)}" }
    }

    /// Geometry and intensity mode from the first image: slice size and rgb-01 for 2D;
    /// median-free defaults for 3D, with nnU-Net's rule for MR normalisation (which needs no
    /// labels): statistics over the non-zero voxels when their bounding box is under 3/4 of the
    /// volume (a skull-stripped or cropped scan), else over all voxels.
    package static func geometryBlock(_ firstImage: String?, notes: inout [String]) throws -> (String, String) {
        guard let p = firstImage else { return ("geometry: {}", "zscore") }
        let img = try ImageReader.read(path: p)
        if img.dims.count == 2 || img.format == .png || img.format == .jpeg {
            return ("geometry: {size: [\(img.dims[1]), \(img.dims[0])], fit: resize}", "rgb-01")
        }
        let share = nonzeroBoxShare(img)
        let intensity = share < 0.75 ? "zscore-nonzero" : "zscore"
        notes.append("intensity \(intensity): the first volume's non-zero voxels fill \(formatShort((share * 1000).rounded() / 10))% of it as a box")
        let sp = img.spacing.prefix(3).map { formatShort($0) }.joined(separator: ", ")
        notes.append("first volume: \(img.dims.map(String.init).joined(separator: "x")) at \(sp) mm, \(img.orientation)")
        let inPlane = img.spatialDims.prefix(2).max() ?? 256
        let size = [64, 128, 192, 256, 320, 384, 512].first { $0 >= inPlane } ?? 512
        return ("""
            geometry:
              orientation: RAS
              slice_axis: z
              target_spacing: [\(formatShort(img.spacing[0])), \(formatShort(img.spacing[min(1, img.spacing.count - 1)])), keep]
              size: [\(size), \(size)]
              fit: pad
            """, intensity)
    }

    /// Volume of the bounding box of the first frame's non-zero voxels over the grid's volume.
    package static func nonzeroBoxShare(_ img: MedicalImage) -> Double {
        let d = img.spatialDims
        let values = img.scaledFloats()
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        let perVoxel = max(1, img.channels)
        for z in 0..<d[2] { for y in 0..<d[1] { for x in 0..<d[0] {
            let i = ((z * d[1] + y) * d[0] + x) * perVoxel
            guard i < values.count, values[i] != 0 else { continue }
            for (a, v) in [x, y, z].enumerated() { lo[a] = min(lo[a], v); hi[a] = max(hi[a], v) }
        } } }
        guard hi[0] >= 0 else { return 1 }
        let box = (0..<3).reduce(1.0) { $0 * Double(hi[$1] - lo[$1] + 1) }
        return box / Double(d.reduce(1, *))
    }
}

package extension ManifestInit.Inferred {
    /// Projects the shards of the inferred manifest from the headers (convert's preflight) and
    /// says on the maps line what each storage mode would take. `online` stays the choice: its
    /// shards are the smallest and its maps exact under every augmentation; dense stored maps
    /// grow with 2·K·H·W·4 bytes a slice.
    package func withStoragePlan(root: String) -> ManifestInit.Inferred {
        guard let m = try? Manifest.parse(yaml, path: root + "/manifest.yaml"),
              let run = try? ConvertRun(options: ConvertOptions(datasetRoot: root, output: root + "/medprep-out"), manifest: m)
        else { return self }
        let plan = ConvertPreflight.plan(run: run)
        guard plan.projections.count == MapsSpec.Storage.allCases.count else { return self }
        let by = Dictionary(uniqueKeysWithValues: plan.projections.map { ($0.storage, $0) })
        let online = by[.online]!.bytes, dense = by[.dense]!.bytes, compact = by[.compact]!
        let ratio = online > 0 ? String(format: "%.0f", Double(dense) / Double(online)) : "?"
        var out = self
        out.yaml = yaml.replacingOccurrences(
            of: ManifestInit.mapsLine,
            with: ManifestInit.mapsLine + "\n# projected shards: online \(mibText(online)); dense \(mibText(dense)) (\(ratio)x); compact \(mibText(compact.bytes))-\(mibText(compact.maxBytes))")
        out.notes.append("maps.storage online: shards \(mibText(online)); storing the maps densely would take \(mibText(dense))")
        return out
    }
}
