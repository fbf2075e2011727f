import MedprepCore

/// What to do to every slice so that all have the target `[H, W]`.
public enum SliceShapeMode: Sendable, Equatable {
    /// Centre pad; a slice larger than the target on an axis is an error.
    case pad
    /// Centre crop; a slice smaller than the target on an axis is an error.
    case crop
    /// Per axis, centre pad when smaller and centre crop when larger (MONAI ResizeWithPadOrCrop).
    case padOrCrop
    /// Crop to the foreground box (labels > 0) grown by `margin` pixels and clipped to the slice,
    /// then `padOrCrop` around it. The box is the one given (the whole case's, projected on the
    /// slice plane) or else the slice's own; with no foreground, the whole slice.
    case cropToForeground(margin: Int)
    /// Images bilinear, labels nearest, to exactly the target (aspect ratio not kept).
    case resize
}

/// Pads, crops and resizes 2D slices. An image and its label map always get the same operation.
///
/// Splits: a pad of `d` pixels puts `floor(d / 2)` before (top / left) and the rest after, as
/// nnU-Net's `pad_nd_image` and MONAI `SpatialPad` do; a crop of `d` pixels removes
/// `floor(d / 2)` before and the rest after, so a crop undoes a pad exactly. (MONAI's
/// `CenterSpatialCrop` starts at `size // 2 - target // 2`, which removes one more pixel before
/// when the size is even and the target odd.)
public enum SliceShaping {
    /// Pixel spacing of a shaped slice: `resize` scales it by the size change; pad and crop keep
    /// it. Row and column spacing of an H × W source slice, `size` the target [H, W] (nil: kept).
    public static func shapedSpacing(row: Double, column: Double, height: Int, width: Int, size: [Int]?,
                                     resize: Bool) -> (row: Double, column: Double) {
        guard let size, resize else { return (row, column) }
        return (row * Double(height) / Double(size[0]), column * Double(width) / Double(size[1]))
    }

    /// Image and label slices shaped to `height` x `width` by `mode`. `foreground` is the case's
    /// foreground box in this slice plane (`Box3D.inPlane`) for `.cropToForeground`.
    /// `imagePadValues`: one per image channel (nil: `imagePadValue` for all).
    public static func shape(image: Slice2D<Float>?, labels: Slice2D<UInt16>?, height: Int, width: Int,
                             mode: SliceShapeMode, foreground: Box2D? = nil, imagePadValue: Float = 0,
                             imagePadValues: [Float]? = nil,
                             threads: Int = 1) throws -> (image: Slice2D<Float>?, labels: Slice2D<UInt16>?) {
        func padImage(_ s: Slice2D<Float>) throws -> Slice2D<Float> {
            guard let values = imagePadValues, Set(values).count > 1 else {
                return try padOrCrop(s, height: height, width: width, value: imagePadValues?.first ?? imagePadValue, threads: threads)
            }
            guard values.count == s.channels else {
                throw MedprepError(.invalidArgument, "\(values.count) pad values for a slice of \(s.channels) channels.")
            }
            // Channels are planar ([C, H, W]): each plane padded with its own value.
            let plane = s.height * s.width
            var out: [Float] = []
            out.reserveCapacity(s.channels * height * width)
            for c in 0..<s.channels {
                let one = try Slice2D(values: Array(s.values[(c * plane)..<((c + 1) * plane)]), channels: 1, height: s.height, width: s.width)
                out += try padOrCrop(one, height: height, width: width, value: values[c], threads: threads).values
            }
            return try Slice2D(values: out, channels: s.channels, height: height, width: width)
        }
        guard height >= 1, width >= 1 else {
            throw MedprepError(.invalidArgument, "target slice size '\(height)x\(width)' must be at least 1x1.")
        }
        guard let ref = image.map({ ($0.height, $0.width) }) ?? labels.map({ ($0.height, $0.width) }) else { return (nil, nil) }
        if let image, let labels, image.height != labels.height || image.width != labels.width {
            throw MedprepError(.mismatch, "image slice \(image.height)x\(image.width) and label slice \(labels.height)x\(labels.width) differ in size.")
        }
        switch mode {
        case .pad, .crop, .padOrCrop:
            if mode == .pad, ref.0 > height || ref.1 > width {
                throw MedprepError(.invalidArgument, "slice \(ref.0)x\(ref.1) is larger than the target \(height)x\(width); 'pad' never crops (use 'pad-or-crop').")
            }
            if mode == .crop, ref.0 < height || ref.1 < width {
                throw MedprepError(.invalidArgument, "slice \(ref.0)x\(ref.1) is smaller than the target \(height)x\(width); 'crop' never pads (use 'pad-or-crop').")
            }
            return (try image.map(padImage), try labels.map { try padOrCrop($0, height: height, width: width, value: 0, threads: threads) })
        case .cropToForeground(let margin):
            guard margin >= 0 else { throw MedprepError(.invalidArgument, "foreground margin '\(margin)' must not be negative.") }
            let box = (foreground ?? labels.flatMap { foregroundBox($0) })?.expanded(by: margin, height: ref.0, width: ref.1)
                ?? Box2D(rows: 0..<ref.0, columns: 0..<ref.1)
            guard !box.rows.isEmpty, !box.columns.isEmpty else {
                throw MedprepError(.invalidArgument, "foreground box \(box.rows) x \(box.columns) lies outside the \(ref.0)x\(ref.1) slice.")
            }
            let img = try image.map { try crop($0, to: box, threads: threads) }
            let lab = try labels.map { try crop($0, to: box, threads: threads) }
            return (try img.map(padImage), try lab.map { try padOrCrop($0, height: height, width: width, value: 0, threads: threads) })
        case .resize:
            return (try image.map { try resize(image: $0, height: height, width: width, threads: threads) },
                    try labels.map { try resize(labels: $0, height: height, width: width, threads: threads) })
        }
    }

    /// Per axis: centre pad with `value` when smaller than the target, centre crop when larger.
    public static func padOrCrop<T>(_ s: Slice2D<T>, height: Int, width: Int, value: T,
                                    threads: Int = 1) throws -> Slice2D<T> {
        if s.height == height && s.width == width { return s }
        // shift: input index = output index + shift (negative when padding).
        func shift(_ size: Int, _ target: Int) -> Int {
            size >= target ? (size - target) / 2 : -((target - size) / 2)
        }
        let sr = shift(s.height, height), sc = shift(s.width, width)
        let inside = [max(0, -sc)..<min(width, s.width - sc), max(0, -sr)..<min(height, s.height - sr), 0..<s.channels]
        var fillBytes = [UInt8]()
        withUnsafeBytes(of: value) { fillBytes.append(contentsOf: $0) }
        let kernel = StridedCopyKernel(outDims: [width, height, s.channels], steps: [1, s.width, s.width * s.height],
                                       base: sr * s.width + sc, channels: 1, threads: threads,
                                       fill: .init(inside: inside, value: fillBytes))
        return try Slice2D(values: Words.map(s.values, count: s.channels * height * width, kernel),
                           channels: s.channels, height: height, width: width)
    }

    /// The part of a slice inside `box` (which must lie within the slice).
    public static func crop<T>(_ s: Slice2D<T>, to box: Box2D, threads: Int = 1) throws -> Slice2D<T> {
        guard box.rows.lowerBound >= 0, box.rows.upperBound <= s.height, !box.rows.isEmpty,
              box.columns.lowerBound >= 0, box.columns.upperBound <= s.width, !box.columns.isEmpty else {
            throw MedprepError(.invalidArgument, "crop box rows \(box.rows), columns \(box.columns) is not inside the \(s.height)x\(s.width) slice.")
        }
        if box.rows.count == s.height && box.columns.count == s.width { return s }
        let h = box.rows.count, w = box.columns.count
        let kernel = StridedCopyKernel(outDims: [w, h, s.channels], steps: [1, s.width, s.width * s.height],
                                       base: box.rows.lowerBound * s.width + box.columns.lowerBound,
                                       channels: 1, threads: threads, fill: nil)
        return try Slice2D(values: Words.map(s.values, count: s.channels * h * w, kernel), channels: s.channels, height: h, width: w)
    }

    /// Bilinear, half-pixel: `F.interpolate(mode='bilinear', align_corners=False,
    /// antialias=False)`: source `(o + 0.5) * in / out - 0.5`, clamped at the edges (the same
    /// kernel as 3D linear resampling). Downscaling does not low-pass first, as torch's default.
    public static func resize(image s: Slice2D<Float>, height: Int, width: Int, threads: Int = 1) throws -> Slice2D<Float> {
        if s.height == height && s.width == width { return s }
        let out = ResampleKernels.resample(s.values, dims: [s.width, s.height, s.channels],
                                           outputDims: [width, height, s.channels], channels: 1, kind: .linear, threads: threads)
        return try Slice2D(values: out, channels: s.channels, height: height, width: width)
    }

    /// Nearest, half-pixel (torch 'nearest-exact', scipy order 0 grid mode): source
    /// `floor((o + 0.5) * in / out)`, clamped. Only existing labels appear.
    public static func resize(labels s: Slice2D<UInt16>, height: Int, width: Int, threads: Int = 1) throws -> Slice2D<UInt16> {
        if s.height == height && s.width == width { return s }
        let out = LabelResampling.nearest(s.values, dims: [s.width, s.height, s.channels],
                                          outputDims: [width, height, s.channels], threads: threads)
        return try Slice2D(values: out, channels: s.channels, height: height, width: width)
    }

    /// Bounding box of label > 0 in a slice; nil when there is none.
    public static func foregroundBox(_ labels: Slice2D<UInt16>) -> Box2D? {
        var r0 = Int.max, r1 = -1, c0 = Int.max, c1 = -1
        labels.values.withUnsafeBufferPointer { v in
            for c in 0..<labels.channels {
                for r in 0..<labels.height {
                    let row = (c * labels.height + r) * labels.width
                    var first = -1, last = -1
                    for x in 0..<labels.width where v[row + x] > 0 {
                        if first < 0 { first = x }
                        last = x
                    }
                    if first >= 0 {
                        r0 = min(r0, r); r1 = max(r1, r)
                        c0 = min(c0, first); c1 = max(c1, last)
                    }
                }
            }
        }
        return r1 < 0 ? nil : Box2D(rows: r0..<(r1 + 1), columns: c0..<(c1 + 1))
    }

    /// Bounding box of label > 0 over a whole volume (x, y, z ranges); nil when there is none.
    public static func foregroundBox(_ labels: Volume3D<UInt16>) -> Box3D? {
        let nx = labels.dims[0], ny = labels.dims[1], nz = labels.dims[2], c = labels.channels
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        labels.voxels.withUnsafeBufferPointer { v in
            for z in 0..<nz {
                for y in 0..<ny {
                    let row = (z * ny + y) * nx * c
                    var first = -1, last = -1
                    for i in 0..<(nx * c) where v[row + i] > 0 {
                        if first < 0 { first = i / c }
                        last = i / c
                    }
                    guard first >= 0 else { continue }
                    lo[0] = min(lo[0], first); hi[0] = max(hi[0], last)
                    lo[1] = min(lo[1], y); hi[1] = max(hi[1], y)
                    lo[2] = min(lo[2], z); hi[2] = max(hi[2], z)
                }
            }
        }
        return hi[0] < 0 ? nil : Box3D(ranges: (0..<3).map { lo[$0]..<(hi[$0] + 1) })
    }
}
