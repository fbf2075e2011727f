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
        public var manifest: Manifest
        /// The manifest as YAML with comments (what `manifest init` writes).
        public var yaml: String
        public var notes: [String]
        /// Comment lines at the top, and after keys (see `ManifestYAML`).
        var header: [String]
        var comments: [String: String]

        init(manifest: Manifest, header: [String], comments: [String: String], notes: [String]) throws {
            self.manifest = manifest; self.header = header; self.comments = comments; self.notes = notes
            yaml = try ManifestYAML.text(manifest, header: header, comments: comments)
        }
    }

    package static let maskWords = ["mask", "label", "gt", "seg", "annotation", "annot", "truth"]

    /// What every inferred manifest starts from: maps computed online at scales 1 and 2.
    package static let maps = MapsSpec(scales: [1, 2], storage: .online)

    package static let comments = [
        "labels.ordinal": "set true when class order is a severity or depth order",
        "intensity": "'ct' for CT (dataset percentiles 0.5/99.5)",
    ]

    public static func infer(root: String) throws -> Inferred {
        let name = (root as NSString).lastPathComponent
        if FileIO.exists(root + "/dataset.json") {
            let nn = try NNUNetDataset.load(root: root)
            let disc = try CaseDiscovery.discover(root: root, spec: nn.caseSpec)
            var notes = ["nnU-Net layout: \(disc.cases.count) cases from dataset.json"]
            let (geometry, intensity) = try geometryAndIntensity(disc.cases.first.map { $0.images[0] }, notes: &notes)
            let m = Manifest(name: name, layout: .nnunet, labels: nn.labels, geometry: geometry, intensity: .init(mode: intensity),
                             maps: maps, folds: .init(k: 5, seed: 0), shardSize: 128)
            return try Inferred(manifest: m, header: ["Written by 'medprep manifest init' from \(root)/dataset.json; review before converting."],
                                comments: comments, notes: notes).withStoragePlan(root: root)
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
        let (geometry, intensity) = try geometryAndIntensity(disc.cases[0].images[0], notes: &notes)
        let m = Manifest(name: name, cases: CaseSpec(images: [imageT], mask: maskT), labels: LabelSpec(classes: classes),
                         geometry: geometry, intensity: .init(mode: intensity), maps: maps, folds: .init(k: 5, seed: 0), shardSize: 128)
        return try Inferred(manifest: m, header: ["Written by 'medprep manifest init' from \(root); review before converting."],
                            comments: intensity == .rgb01 ? comments.filter { $0.key != "intensity" } : comments,
                            notes: notes).withStoragePlan(root: root)
    }

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

    /// One class per distinct value (or colour) seen in the masks.
    package static func inferClasses(_ masks: [String], notes: inout [String]) throws -> [ClassSpec] {
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
                ClassSpec(name: "class_\(i)", colour: c)
            }
        }
        if values.count > 32 { notes.append("masks hold \(values.count) distinct values: JPEG or anti-aliased masks? run 'medprep validate'") }
        if values.sorted() == [0, 255] { notes.append("0/255 mask: class 'class_1' is grey level 255") }
        return values.sorted().prefix(64).enumerated().map { i, v in ClassSpec(name: i == 0 && v == 0 ? "background" : "class_\(i)", value: v) }
    }

    /// Geometry and intensity mode from the first image: slice size and rgb-01 for 2D;
    /// median-free defaults for 3D, with nnU-Net's rule for MR normalisation (which needs no
    /// labels): statistics over the non-zero voxels when their bounding box is under 3/4 of the
    /// volume (a skull-stripped or cropped scan), else over all voxels.
    package static func geometryAndIntensity(_ firstImage: String?, notes: inout [String]) throws -> (GeometrySpec, IntensitySpec.Mode) {
        guard let p = firstImage else { return (GeometrySpec(), .zscore) }
        let img = try ImageReader.read(path: p)
        if img.dims.count == 2 || img.format == .png || img.format == .jpeg {
            return (GeometrySpec(size: [img.dims[1], img.dims[0]], fit: .resize), .rgb01)
        }
        let share = nonzeroBoxShare(img)
        let intensity: IntensitySpec.Mode = share < 0.75 ? .zscoreNonzero : .zscore
        notes.append("intensity \(intensity.rawValue): the first volume's non-zero voxels fill \(formatShort((share * 1000).rounded() / 10))% of it as a box")
        let sp = img.spacing.prefix(3).map { formatShort($0) }.joined(separator: ", ")
        notes.append("first volume: \(img.dims.map(String.init).joined(separator: "x")) at \(sp) mm, \(img.orientation)")
        let inPlane = img.spatialDims.prefix(2).max() ?? 256
        let size = [64, 128, 192, 256, 320, 384, 512].first { $0 >= inPlane } ?? 512
        // In-plane spacing as the first volume has it (as printed, 3-4 digits); slices kept.
        let inPlaneSpacing = [img.spacing[0], img.spacing[min(1, img.spacing.count - 1)]].map { Double(formatShort($0)) ?? $0 }
        return (GeometrySpec(orientation: "RAS", sliceAxis: .z, targetSpacing: inPlaneSpacing + [nil], size: [size, size], fit: .pad),
                intensity)
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
    package func withStoragePlan(root: String) throws -> ManifestInit.Inferred {
        guard let run = try? ConvertRun(options: ConvertOptions(datasetRoot: root, output: root + "/medprep-out"), manifest: manifest)
        else { return self }
        let plan = ConvertPreflight.plan(run: run)
        guard plan.projections.count == MapsSpec.Storage.allCases.count else { return self }
        let by = Dictionary(uniqueKeysWithValues: plan.projections.map { ($0.storage, $0) })
        let online = by[.online]!.bytes, dense = by[.dense]!.bytes, compact = by[.compact]!
        let ratio = online > 0 ? String(format: "%.0f", Double(dense) / Double(online)) : "?"
        var comments = self.comments
        comments["maps"] = "projected shards: online \(mibText(online)); dense \(mibText(dense)) (\(ratio)x); compact \(mibText(compact.bytes))-\(mibText(compact.maxBytes))"
        var out = try ManifestInit.Inferred(manifest: manifest, header: header, comments: comments, notes: notes)
        out.notes.append("maps.storage online: shards \(mibText(online)); storing the maps densely would take \(mibText(dense))")
        return out
    }
}
