import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// One shaped slice, ready for its shard: the sample (image, label, CORAL metadata; maps not yet
/// computed) and the pixel spacing its maps are measured with, [column (x), row (y)] in mm.
public struct ShapedSlice: Sendable {
    public var sample: ShardSample
    public var spacing: [Double]
    /// Label > 0 pixels the shaping cut off.
    public var croppedForeground = 0
}

/// Everything a case contributes to the output: its slices (in slice order) and its index
/// record. Computed independently per case, so cases can run in any order or in parallel.
public struct CaseOutput: Sendable {
    public var slices: [ShapedSlice]
    /// The case's entry in index.json (`sliceRange` is filled in when its samples are placed).
    public var record: ShardIndex.Case
    /// Per-channel normalisation statistics, for index.json's "normalisation".
    public var normalisation: ShardIndex.CaseNormalisation
    public var sliceHeight: Int
    public var sliceWidth: Int
    public var channels: Int
}

/// The fixed per-run settings every case is processed with.
public struct ConvertPlan: Sendable {
    public var manifest: Manifest
    public var labels: LabelSpec
    public var root: String
    public var folds: [String: Int]
    /// Dataset CT statistics per channel (intensity mode `ct` only).
    public var ctStatistics: [CTStatistics]?
    /// Threads used inside one case (slices' maps); cases themselves run on `--jobs` workers.
    public var threadsPerCase: Int
    /// How far a case's files may be apart and still share a grid (validate's table).
    public var tolerances = GeometryTolerances()

    package var classCount: Int { labels.classes.count }
    package var axis: SliceAxis { manifest.geometry.slicing }
}

/// read → reorient to canonical → resample → normalise intensities → slice → shape each slice →
/// samples with CORAL metadata. The SDF / RRW maps of each final slice are computed when the
/// slice is placed in its shard (`SliceMaps`), straight into the shard's file image.
public enum CaseProcessor {
    public static func process(_ c: CaseFiles, index: Int, plan: ConvertPlan) throws -> CaseOutput {
        let m = plan.manifest
        var sources: [ShardIndex.Source] = []
        func source(_ role: ShardIndex.Source.Role, _ path: String, channel: Int? = nil) throws {
            sources.append(ShardIndex.Source(role: role, channel: channel, path: relative(path, to: plan.root),
                                             sha256: SHA256.hex(try FileIO.readAll(path))))
        }
        // Read images (scaled float32) and the mask (mapped to class indices).
        var images: [MedicalImage] = []
        for (ch, p) in c.images.enumerated() {
            let img = NIfTIReader.handles(p) ? try NIfTIReader.read(path: p, as: .scaledFloat32) : try ImageReader.read(path: p)
            if let first = images.first {
                try checkGrid(img, path: p, on: first, path: c.images[0], isMask: false, tolerances: plan.tolerances)
            }
            images.append(img)
            try source(.image, p, channel: c.images.count > 1 ? ch : nil)
        }
        let reference = images[0]
        let (classes, ambiguous, maskPath) = try readMask(c, reference: reference, plan: plan)
        if let maskPath { try source(.mask, maskPath) }
        for p in c.nestedMasks { try source(.mask, p) }

        let is2D = reference.dims.count == 2 || (reference.format == .png || reference.format == .jpeg)
        var labelVolume = try Volume3D<UInt16>(voxels: classes, dims: reference.spatialDims,
                                               spacing: Array(reference.spacing.prefix(3)), affine: reference.affine)
        // Channels: NIfTI inputs are one channel per file; 2D images carry theirs (RGB).
        var channelVolumes: [Volume3D<Float>] = []
        for img in images {
            let floats = img.scaledFloats()
            for ch in 0..<img.channels {
                let vals = img.channels == 1 ? floats : stride(from: ch, to: floats.count, by: img.channels).map { floats[$0] }
                channelVolumes.append(try Volume3D<Float>(voxels: vals, dims: img.spatialDims, spacing: Array(img.spacing.prefix(3)),
                                                          affine: img.affine))
            }
        }
        let storedMax: [Float] = images.flatMap { img in
            [Float](repeating: img.voxels.type == .uint16 ? 65535 : 255, count: img.channels)
        }

        if !is2D {
            let t = try AxisReorientation.between(affine: reference.affine, target: m.geometry.orientation)
            labelVolume = try Reorientation.reorient(labelVolume, by: t, threads: plan.threadsPerCase)
            channelVolumes = try channelVolumes.map { try Reorientation.reorient($0, by: t, threads: plan.threadsPerCase) }
            if let target = m.geometry.targetSpacing {
                let rp = try ResamplePlan(dims: labelVolume.dims, spacing: labelVolume.spacing, target: target)
                let interp: ImageInterpolation = m.geometry.imageInterpolation == .cubic ? .cubic : .linear
                channelVolumes = try channelVolumes.map { try Resampling.resample($0, plan: rp, interpolation: interp, threads: plan.threadsPerCase) }
                let method: LabelInterpolation = m.geometry.labelInterpolation == .nearest ? .nearest : .oneHotLinear
                labelVolume = try Resampling.resample(labelVolume, plan: rp, method: method, threads: plan.threadsPerCase)
            }
        }

        // Intensity normalisation, per channel.
        var stats: [ShardIndex.ChannelStatistics] = []
        let foreground = IntensityNormalization.foregroundMask(labels: labelVolume.voxels)
        for (ch, vol) in channelVolumes.enumerated() {
            var v = vol
            switch m.intensity.mode {
            case .zscore, .zscoreForeground, .zscoreNonzero:
                // The region the statistics come from; the whole image when it would be empty.
                var region: [Bool]? = nil
                if m.intensity.mode == .zscoreForeground && foreground.contains(true) { region = foreground }
                if m.intensity.mode == .zscoreNonzero {
                    let nonzero = vol.voxels.map { $0 != 0 }
                    if nonzero.contains(true) { region = nonzero }
                }
                let mom = try Moments.of(vol.voxels, mask: region, threads: plan.threadsPerCase)
                v.voxels = try IntensityNormalization.zScore(vol.voxels, mask: region, threads: plan.threadsPerCase)
                var entry = ShardIndex.ChannelStatistics(channel: ch, mean: mom.mean, std: mom.std)
                if m.intensity.mode == .zscoreNonzero { entry.nonzeroOnly = region != nil } else { entry.foregroundOnly = region != nil }
                stats.append(entry)
            case .ct:
                guard let s = plan.ctStatistics, ch < s.count else {
                    throw MedprepError(.invalidArgument, "CT normalisation needs dataset statistics for channel \(ch).")
                }
                v.voxels = IntensityNormalization.ct(vol.voxels, statistics: s[ch], threads: plan.threadsPerCase)
            case .minmax:
                let mom = try Moments.of(vol.voxels, threads: plan.threadsPerCase)
                v.voxels = try IntensityNormalization.minMax(vol.voxels, threads: plan.threadsPerCase)
                stats.append(ShardIndex.ChannelStatistics(channel: ch, min: mom.min, max: mom.max))
            case .rgb01:
                let scale = storedMax[min(ch, storedMax.count - 1)]
                v.voxels = vol.voxels.map { $0 / scale }
            case .none:
                break
            }
            channelVolumes[ch] = v
        }
        // What padding is filled with, per channel (recorded in the case's normalisation entry).
        let padValues: [Float] = channelVolumes.map { vol in
            if let p = m.geometry.padValue { return Float(p) }
            return vol.voxels.lazy.filter(\.isFinite).min() ?? 0
        }

        // Interleave channels, then cut slices ([C, H, W] planar).
        let C = channelVolumes.count
        var interleaved = C == 1 ? channelVolumes[0].voxels : [Float](repeating: 0, count: labelVolume.voxelCount * C)
        if C > 1 {
            for (ch, vol) in channelVolumes.enumerated() {
                for i in 0..<vol.voxels.count { interleaved[i * C + ch] = vol.voxels[i] }
            }
        }
        channelVolumes = []  // the interleaved volume is all that is sliced
        let imageVolume = try Volume3D<Float>(voxels: interleaved, dims: labelVolume.dims, spacing: labelVolume.spacing,
                                              channels: C, affine: labelVolume.affine)
        let labels = labelVolume
        let axis: SliceAxis = is2D ? .z : plan.axis
        let count = imageVolume.dims[axis.index]
        let caseBox = SliceShaping.foregroundBox(labelVolume)?.inPlane(axis)
        let g = m.geometry
        let mode = g.fit.shapeMode(margin: g.foregroundMargin)
        if let size = g.size, count > 0, let why = g.fit.refusal(height: imageVolume.dims[Slicing.planeAxes(axis).rows],
                                                                  width: imageVolume.dims[Slicing.planeAxes(axis).columns], size: size) {
            throw MedprepError(.invalidArgument, path: c.images[0], "case '\(c.id)': \(why).")
        }
        // One slot per slice, written by exactly one worker each.
        let box = UnsafeSendable(UnsafeMutableBufferPointer<Result<ShapedSlice, Error>?>.allocate(capacity: count))
        box.value.initialize(repeating: nil)
        defer {
            box.value.deinitialize()  // releases the slices' arrays
            box.value.deallocate()
        }
        let sliceWork: @Sendable (Int) -> Void = { i in
            box.value[i] = Result {
                let info = Slicing.info(imageVolume, axis: axis, index: i)
                var img = try Slicing.slice(imageVolume, axis: axis, index: i)
                var lab = try Slicing.slice(labels, axis: axis, index: i)
                var cropped = 0
                let (rowSpacing, colSpacing) = SliceShaping.shapedSpacing(row: info.rowSpacing, column: info.columnSpacing,
                                                                          height: img.height, width: img.width, size: g.size,
                                                                          resize: g.fit == .resize)
                if let size = g.size {
                    let before = Self.foregroundPixels(lab.values)
                    let shaped = try SliceShaping.shape(image: img, labels: lab, height: size[0], width: size[1], mode: mode,
                                                        foreground: caseBox, imagePadValues: padValues)
                    img = shaped.image!; lab = shaped.labels!
                    if g.fit != .resize { cropped = before - Self.foregroundPixels(lab.values) }
                }
                // The maps are computed later, straight into the shard (`SliceMaps`).
                return ShapedSlice(sample: ShardSample(image: img.values, label: lab.values, caseIndex: index, sliceIndex: i,
                                                       sliceCount: count, sliceCoordMM: info.worldCoordinate),
                                   spacing: [colSpacing, rowSpacing], croppedForeground: cropped)
            }
        }
        parallelFor(count, threads: plan.threadsPerCase, sliceWork)
        var slices: [ShapedSlice] = []
        slices.reserveCapacity(count)
        for r in box.value { slices.append(try r!.get()) }
        let h = slices.first.map { _ in g.size?[0] ?? imageVolume.dims[Slicing.planeAxes(axis).rows] } ?? 0
        let w = slices.first.map { _ in g.size?[1] ?? imageVolume.dims[Slicing.planeAxes(axis).columns] } ?? 0

        let geometry = ShardIndex.OriginalGeometry(dims: reference.dims, spacing: reference.spacing,
                                                   affine: reference.affine.rows, orientation: reference.orientation)
        // Foreground that shaping cut off (pad-or-crop, crop, crop-foreground): kept in the index
        // and reported by convert, never lost silently.
        let cropped = slices.reduce(0) { $0 + $1.croppedForeground }
        let record = ShardIndex.Case(
            caseIndex: index, id: c.id, sources: sources, originalGeometry: geometry, sliceAxis: axis,
            sliceSpacingMM: slices.first.map { [$0.spacing[1], $0.spacing[0]] } ?? [1, 1],
            // The distance between consecutive slices: with slice_spacing_mm, the sampling of the
            // stacked slices (HD95 in mm on a volume).
            sliceStepMM: imageVolume.spacing[axis.index],
            sliceRange: ShardIndex.SliceRange(firstSample: 0, count: slices.count), fold: plan.folds[c.id] ?? 0,
            jpegAmbiguousPixels: ambiguous, foregroundPixelsCropped: cropped > 0 ? cropped : nil)
        return CaseOutput(slices: slices, record: record,
                          normalisation: ShardIndex.CaseNormalisation(caseIndex: index, channels: stats, padValues: padValues.map(Double.init)),
                          sliceHeight: h, sliceWidth: w, channels: C)
    }

    /// Class indices of the case's mask on the reference image grid, the JPEG snapping count
    /// (nil for lossless masks) and the mask path.
    package static func readMask(_ c: CaseFiles, reference: MedicalImage, plan: ConvertPlan) throws -> ([UInt16], Int?, String?) {
        if !c.nestedMasks.isEmpty {
            let masks = try c.nestedMasks.map { try ImageReader.read(path: $0) }
            for (p, mk) in zip(c.nestedMasks, masks) {
                try checkGrid(mk, path: p, on: reference, path: c.images[0], isMask: true, tolerances: plan.tolerances)
            }
            return (try MaskDecoder.nestedClassIndices(masks, path: c.nestedMasks[0]), nil, nil)
        }
        guard let path = c.mask else {
            throw MedprepError(.invalidArgument, path: c.images[0], "case '\(c.id)' has no mask.")
        }
        let mask = try ImageReader.read(path: path)
        try checkGrid(mask, path: path, on: reference, path: c.images[0], isMask: true, tolerances: plan.tolerances)
        let lossy = mask.format == .jpeg
        // The mask has one frame: checkGrid refuses more, as validate does.
        let mapped = try MaskDecoder(labels: plan.labels).classIndices(mask, path: path, undeclared: lossy ? .snapToNearest : .refuse)
        return (mapped.classes, lossy ? mapped.snapped : nil, path)
    }

    /// A mask or image channel must lie on the first image's grid, by validate's own check and
    /// tolerances: what `medprep validate` reports as an error here, convert refuses, and nothing
    /// else (a difference within the tolerances is taken as the same grid: the image's).
    package static func checkGrid(_ other: MedicalImage, path otherPath: String, on image: MedicalImage, path imagePath: String,
                          isMask: Bool, tolerances: GeometryTolerances) throws {
        let findings = GeometryChecks.pairChecks(reference: .of(image: image, path: imagePath), other: .of(image: other, path: otherPath),
                                                 otherIsMask: isMask, caseID: "", tolerances: tolerances)
        if let f = findings.first(where: { $0.severity == .error }) {
            throw MedprepError(.mismatch, path: otherPath, "\(f.code.rawValue): \(f.message)")
        }
    }

    package static func foregroundPixels(_ labels: [UInt16]) -> Int { labels.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }

    package static func relative(_ path: String, to root: String) -> String {
        let r = root.hasSuffix("/") ? root : root + "/"
        return path.hasPrefix(r) ? String(path.dropFirst(r.count)) : path
    }
}
