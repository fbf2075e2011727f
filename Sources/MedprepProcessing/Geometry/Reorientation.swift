import MedprepCore

/// An axis permutation with flips, exactly nibabel's orientation transform array `ornt`:
/// input voxel axis `i` becomes output axis `outputAxis[i]`, reversed when `flipped[i]`.
/// Reorienting moves voxels and rewrites the affine; it never interpolates, so it is lossless
/// and the world position of every voxel is unchanged.
public struct AxisReorientation: Sendable, Equatable {
    /// nibabel `ornt[:, 0]`: the output axis of each input axis.
    public let outputAxis: [Int]
    /// nibabel `ornt[:, 1] == -1`.
    public let flipped: [Bool]

    public init(outputAxis: [Int], flipped: [Bool]) throws {
        guard outputAxis.count == 3, flipped.count == 3, outputAxis.sorted() == [0, 1, 2] else {
            throw MedprepError(.invalidArgument, "axis transform '\(outputAxis)' is not a permutation of 0, 1, 2.")
        }
        self.outputAxis = outputAxis
        self.flipped = flipped
    }

    public static let identity = try! AxisReorientation(outputAxis: [0, 1, 2], flipped: [false, false, false])

    public var isIdentity: Bool { self == .identity }

    /// nibabel `axcodes2ornt`: one letter per voxel axis from R/L, A/P, S/I, each world axis once.
    /// Lower case is accepted.
    /// Returns, per voxel axis, the world axis (0 = R/L, 1 = A/P, 2 = S/I) and whether it points
    /// the negative way (L, P, I).
    public static func parse(_ code: String) throws -> [(worldAxis: Int, flipped: Bool)] {
        let letters: [Character: (Int, Bool)] = [
            "R": (0, false), "L": (0, true), "A": (1, false), "P": (1, true), "S": (2, false), "I": (2, true),
        ]
        let chars = Array(code.uppercased())
        let parsed = chars.compactMap { letters[$0] }
        guard chars.count == 3, parsed.count == 3, Set(parsed.map(\.0)).count == 3 else {
            throw MedprepError(.invalidArgument,
                               "orientation code '\(code)' is not valid; expected one letter each from R/L, A/P and S/I, such as 'RAS' or 'LPS'.")
        }
        return parsed.map { (worldAxis: $0.0, flipped: $0.1) }
    }

    /// nibabel `ornt_transform(io_orientation(affine), axcodes2ornt(code))`: the transform that
    /// makes an image with `affine` have orientation `code`.
    public static func between(affine: Affine4, target code: String) throws -> AxisReorientation {
        let end = try parse(code)
        let start = Orientation.axisMappings(affine)
        var out = [Int](repeating: 0, count: 3), flip = [Bool](repeating: false, count: 3)
        for i in 0..<3 {
            guard let s = start[i] else {
                throw MedprepError(.invalidArgument, "the affine has no direction along voxel axis \(i), so it cannot be reoriented.")
            }
            let j = end.firstIndex { $0.worldAxis == s.worldAxis }!
            out[i] = j
            flip[i] = s.flipped != end[j].flipped
        }
        return try AxisReorientation(outputAxis: out, flipped: flip)
    }

    /// The input axis that becomes each output axis (nibabel `argsort(ornt[:, 0])`).
    public var inputAxis: [Int] { (0..<3).map { k in outputAxis.firstIndex(of: k)! } }

    public func outputDims(_ dims: [Int]) -> [Int] { inputAxis.map { dims[$0] } }

    public func outputSpacing(_ spacing: [Double]) -> [Double] { inputAxis.map { spacing[$0] } }

    /// nibabel `affine @ inv_ornt_aff(ornt, shape)`: output column `outputAxis[i]` is input column
    /// `i`, negated when flipped, and the origin moves to the voxel that becomes index 0.
    public func outputAffine(_ affine: Affine4, inputDims dims: [Int]) -> Affine4 {
        var a = affine
        for r in 0..<3 {
            var t = affine[r, 3]
            for i in 0..<3 {
                let col = affine[r, i]
                a[r, outputAxis[i]] = flipped[i] ? -col : col
                if flipped[i] { t += Double(dims[i] - 1) * col }
            }
            a[r, 3] = t
        }
        return a
    }

    /// The voxels rearranged: output voxel `o` is input voxel `i` with
    /// `i[a] = flipped[a] ? dims[a] - 1 - o[outputAxis[a]] : o[outputAxis[a]]` (channels travel
    /// with their voxel). Same bytes for any thread count.
    public func apply<T: BitwiseCopyable>(_ voxels: [T], dims: [Int], channels: Int = 1,
                                          threads: Int = defaultThreadCount) -> [T] {
        precondition(voxels.count == dims.reduce(1, *) * channels, "voxel count must match dims")
        if isIdentity { return voxels }
        let inStride = [1, dims[0], dims[0] * dims[1]]
        var steps = [0, 0, 0], base = 0
        for a in 0..<3 {
            let k = outputAxis[a]
            steps[k] = flipped[a] ? -inStride[a] : inStride[a]
            if flipped[a] { base += (dims[a] - 1) * inStride[a] }
        }
        let kernel = StridedCopyKernel(outDims: outputDims(dims), steps: steps, base: base, channels: channels,
                                       threads: threads, fill: nil)
        return Words.map(voxels, count: voxels.count, kernel)
    }
}

public enum Reorientation {
    /// A volume reoriented to `code` (default "RAS", nibabel's `as_closest_canonical`): voxels
    /// permuted and flipped, dims and spacing permuted, affine rewritten as nibabel does. A volume
    /// already in that orientation is returned unchanged.
    public static func reorient<T>(_ volume: Volume3D<T>, to code: String = "RAS",
                                   threads: Int = defaultThreadCount) throws -> Volume3D<T> {
        let t = try AxisReorientation.between(affine: volume.affine, target: code)
        return try reorient(volume, by: t, threads: threads)
    }

    /// Applies a given transform (to move a label map exactly as its image was moved).
    public static func reorient<T>(_ volume: Volume3D<T>, by t: AxisReorientation,
                                   threads: Int = defaultThreadCount) throws -> Volume3D<T> {
        if t.isIdentity { return volume }
        return try Volume3D(voxels: t.apply(volume.voxels, dims: volume.dims, channels: volume.channels, threads: threads),
                            dims: t.outputDims(volume.dims), spacing: t.outputSpacing(volume.spacing),
                            channels: volume.channels, affine: t.outputAffine(volume.affine, inputDims: volume.dims))
    }
}
