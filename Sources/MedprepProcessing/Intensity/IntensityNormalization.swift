import MedprepCore

/// Dataset-level CT statistics (nnU-Net's `CTNormalization` inputs): percentiles 0.5 and 99.5
/// and mean / std of foreground intensities pooled over the training cases.
public struct CTStatistics: Sendable, Equatable, Codable {
    public var lower: Double
    public var upper: Double
    public var mean: Double
    public var std: Double
    /// Samples the statistics came from.
    public var count: Int

    public init(lower: Double, upper: Double, mean: Double, std: Double, count: Int = 0) {
        self.lower = lower; self.upper = upper; self.mean = mean; self.std = std; self.count = count
    }

    /// From pooled foreground samples: numpy-exact 'linear' percentiles 0.5 / 99.5, mean and
    /// population std in double. Non-finite samples are left out.
    public static func compute(samples: [Float], lowerPercentile: Double = 0.5,
                               upperPercentile: Double = 99.5) throws -> CTStatistics {
        let d = samples.compactMap { v -> Double? in v.isFinite ? Double(v) : nil }
        guard !d.isEmpty else {
            throw MedprepError(.invalidArgument, "cannot compute CT statistics: no finite foreground samples.")
        }
        let p = Percentile.linear(d, [lowerPercentile, upperPercentile])
        let m = try Moments.of(samples, threads: 1)
        return CTStatistics(lower: p[0], upper: p[1], mean: m.mean, std: m.std, count: d.count)
    }
}

/// How to rescale intensities, per case. See docs/normalisation.md for the exact formulas.
public enum IntensityNormalization {
    /// The smallest standard deviation divided by (nnU-Net's floor): a constant image becomes 0,
    /// not NaN.
    public static let stdFloor = 1e-8

    /// Foreground mask from a label map: label > 0.
    public static func foregroundMask(labels: [UInt16]) -> [Bool] { labels.map { $0 > 0 } }

    /// Per-case z-score: `(x - mean) / max(std, 1e-8)` in double, stored as Float. Statistics over
    /// all finite voxels, or only where `mask` is true. With `zeroOutsideMask`, voxels outside the
    /// mask become 0 (nnU-Net's `use_mask_for_norm`); otherwise every voxel uses the masked
    /// statistics.
    public static func zScore(_ values: [Float], mask: [Bool]? = nil, zeroOutsideMask: Bool = false,
                              threads: Int = defaultThreadCount) throws -> [Float] {
        let m = try Moments.of(values, mask: mask, threads: threads)
        guard m.count > 0 else {
            throw MedprepError(.invalidArgument, "cannot z-score: no finite values\(mask == nil ? "" : " inside the mask").")
        }
        let mean = m.mean, sd = max(m.std, stdFloor)
        let zero = zeroOutsideMask ? mask : nil
        return map(values, mask: zero, threads: threads) { Float((Double($0) - mean) / sd) }
    }

    /// CT: clip to `[stats.lower, stats.upper]`, then `(x - mean) / max(std, 1e-8)` with the
    /// dataset mean and std; in double, stored as Float.
    public static func ct(_ values: [Float], statistics s: CTStatistics,
                          threads: Int = defaultThreadCount) -> [Float] {
        let lo = s.lower, hi = s.upper, mean = s.mean, sd = max(s.std, stdFloor)
        return map(values, mask: nil, threads: threads) { Float((min(max(Double($0), lo), hi) - mean) / sd) }
    }

    /// Min-max to [0, 1]: `(x - min) / (max - min)` over the finite values, in double; a constant
    /// image becomes all 0.
    public static func minMax(_ values: [Float], threads: Int = defaultThreadCount) throws -> [Float] {
        let m = try Moments.of(values, threads: threads)
        guard m.count > 0 else { throw MedprepError(.invalidArgument, "cannot min-max scale: no finite values.") }
        let lo = m.min, range = m.max - m.min
        if range == 0 { return map(values, mask: nil, threads: threads) { _ in 0 } }
        return map(values, mask: nil, threads: threads) { Float((Double($0) - lo) / range) }
    }

    /// 8-bit RGB(A) to [0, 1] per channel: `Float(v) / 255`, then optionally `(v - mean[c]) / std[c]`
    /// (e.g. ImageNet statistics), in Float arithmetic like `x.astype(np.float32) / 255`. Channels
    /// are interleaved in and out (the layout `MedicalImage` keeps); slicing makes them planar.
    public static func rgb8(_ bytes: [UInt8], channels: Int, mean: [Float]? = nil, std: [Float]? = nil) throws -> [Float] {
        guard channels >= 1, bytes.count % channels == 0 else {
            throw MedprepError(.invalidArgument, "\(bytes.count) bytes are not a whole number of \(channels)-channel pixels.")
        }
        for (name, a) in [("mean", mean), ("std", std)] {
            if let a, a.count != channels {
                throw MedprepError(.invalidArgument, "per-channel \(name) has \(a.count) values for \(channels) channels.")
            }
        }
        if let std, let bad = std.first(where: { !($0 > 0) }) {
            throw MedprepError(.invalidArgument, "per-channel std '\(bad)' must be positive.")
        }
        var out = bytes.map { Float($0) / 255 }
        if mean != nil || std != nil {
            let mu = mean ?? [Float](repeating: 0, count: channels), sd = std ?? [Float](repeating: 1, count: channels)
            for i in out.indices { let c = i % channels; out[i] = (out[i] - mu[c]) / sd[c] }
        }
        return out
    }

    /// An 8-bit image (RGB, RGBA or grey PNG/JPEG, NIfTI RGB24) as a float volume in [0, 1] per
    /// channel (see `rgb8(_:channels:mean:std:)`), channels interleaved like the image.
    public static func rgb8(_ image: MedicalImage, mean: [Float]? = nil, std: [Float]? = nil) throws -> Volume3D<Float> {
        guard case .uint8(let bytes) = image.voxels else {
            throw MedprepError(.unsupported, "8-bit scaling needs uint8 voxels, not '\(image.voxels.type.rawValue)'.")
        }
        let f = image.frameCount > 1 ? try image.frame(0) : image
        let n = f.voxelCount * f.channels
        return try Volume3D(voxels: rgb8(Array(bytes.prefix(n)), channels: f.channels, mean: mean, std: std),
                            dims: f.spatialDims, spacing: Array(f.spacing.prefix(3)), channels: f.channels, affine: f.affine)
    }

    /// Foreground intensities of one case for the dataset statistics: image values where
    /// label > 0, in storage order; with `maxSamples`, every k-th of them (k = ceil(count /
    /// maxSamples)), a deterministic stand-in for nnU-Net's seeded random 10 000 per case.
    public static func foregroundSamples(image: [Float], labels: [UInt16], maxSamples: Int? = nil) throws -> [Float] {
        guard image.count == labels.count else {
            throw MedprepError(.mismatch, "image has \(image.count) voxels but the label map has \(labels.count).")
        }
        var fg = [Float]()
        for i in image.indices where labels[i] > 0 { fg.append(image[i]) }
        guard let cap = maxSamples, cap > 0, fg.count > cap else { return fg }
        let k = (fg.count + cap - 1) / cap
        return Swift.stride(from: 0, to: fg.count, by: k).map { fg[$0] }
    }

    /// Elementwise map in parallel blocks; `mask` false → 0.
    static func map(_ values: [Float], mask: [Bool]?, threads: Int, _ f: @escaping @Sendable (Float) -> Float) -> [Float] {
        let n = values.count
        let block = 65536
        return HugePages.array(count: n) { out in
            values.withUnsafeBufferPointer { v in
                withOptionalBuffer(mask) { (m: UnsafeBufferPointer<Bool>?) -> Void in
                    let vs = UnsafeSendable(v), ms = UnsafeSendable(m), os = UnsafeSendable(out)
                    parallelFor((n + block - 1) / block, threads: threads) { b in
                        let v = vs.value, o = os.value
                        let r = (b * block)..<min(n, (b + 1) * block)
                        if let m = ms.value {
                            for i in r { o[i] = m[i] ? f(v[i]) : 0 }
                        } else {
                            for i in r { o[i] = f(v[i]) }
                        }
                    }
                }
            }
        }
    }
}
