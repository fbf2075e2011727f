import MedprepCore

/// A regular grid of 1 to 3 axes, x fastest in memory (`index = (z * ny + y) * nx + x`),
/// with a voxel size per axis. The distance transforms work on this and plain arrays.
public struct MapGrid: Sendable, Equatable {
    /// Sizes as given (1 to 3 axes). Missing axes are size 1.
    public let dims: [Int]
    /// Voxel size per axis in `dims`, millimetres (or any unit: distances come out in it).
    public let spacing: [Double]

    /// Validates sizes (> 0) and spacing (finite, > 0). `spacing` may be shorter than `dims`
    /// (missing entries are 1) or longer (extra entries ignored).
    public init(dims: [Int], spacing: [Double] = []) throws {
        guard (1...3).contains(dims.count) else {
            throw MedprepError(.invalidArgument, "a distance map grid needs 1 to 3 axes, got '\(dims.count)'.")
        }
        for (i, n) in dims.enumerated() where n < 1 {
            throw MedprepError(.invalidArgument, "grid size '\(n)' on axis \(i) must be at least 1.")
        }
        var sp = [Double]()
        for i in 0..<dims.count {
            let s = i < spacing.count ? spacing[i] : 1
            guard s.isFinite && s > 0 else {
                throw MedprepError(.invalidArgument, "voxel spacing '\(s)' on axis \(i) must be finite and positive.")
            }
            sp.append(s)
        }
        let total = dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard total < Int(Int32.max) else {
            throw MedprepError(.tooLarge, "grid of \(total) voxels is too large for the distance transform (limit \(Int32.max)).")
        }
        self.dims = dims
        self.spacing = sp
    }

    public var rank: Int { dims.count }
    public var nx: Int { dims[0] }
    public var ny: Int { dims.count > 1 ? dims[1] : 1 }
    public var nz: Int { dims.count > 2 ? dims[2] : 1 }
    public var count: Int { nx * ny * nz }
    /// Spacing padded to 3 axes.
    var spacing3: [Double] { (0..<3).map { $0 < spacing.count ? spacing[$0] : 1 } }
    var dims3: [Int] { [nx, ny, nz] }
}

/// Units of the distances in a map.
public enum DistanceUnits: String, Sendable, CaseIterable, Codable {
    /// Voxel steps: every axis counts 1 per voxel whatever the spacing.
    case px
    /// Millimetres: each axis is scaled by its spacing (anisotropic).
    case mm
}

/// Where scipy's `distance_transform_edt` puts the background when a mask has none.
///
/// scipy measures an all-foreground mask to a virtual background voxel at index -1 on the
/// array's first axis and 0 on the others. Which of medprep's axes that is depends on how the
/// array was read in Python, so it is stated here rather than guessed.
public enum VirtualVoxelAxis: String, Sendable, CaseIterable, Codable {
    /// `dims[0]` (x): scipy on an array whose shape equals `dims`, as nibabel reads NIfTI (`arr[x, y, z]`).
    case first
    /// The last axis given (y for a 2D grid, z for 3D): scipy on the C-order view, shape = reversed
    /// `dims`, as Pillow reads a PNG (`arr[row, col]`).
    case last
}

/// How a 3D grid is split before maps are computed.
public enum MapMode: Sendable, Equatable {
    /// The whole grid at once (3D distances for a volume, 2D for an image).
    case volume
    /// Each 2D slice on its own, slicing along `axis` (0 = x, 1 = y, 2 = z): what a 2D network sees.
    case slices(axis: Int)
}

extension MapGrid {
    /// The 2D grid of one slice along `axis`: the two remaining axes in increasing order.
    func sliceGrid(axis: Int) throws -> MapGrid {
        let rest = (0..<3).filter { $0 != axis }
        return try MapGrid(dims: rest.map { dims3[$0] }, spacing: rest.map { spacing3[$0] })
    }

    /// Grid downsampled by `factor` on the given axes: size ceil(n / factor), spacing times factor
    /// (only on axes whose size is above 1).
    func downsampled(by factor: Int, axes: [Int]) throws -> MapGrid {
        var d = dims, s = spacing
        for a in axes where a < d.count && d[a] > 1 {
            d[a] = (d[a] + factor - 1) / factor
            s[a] *= Double(factor)
        }
        return try MapGrid(dims: d, spacing: s)
    }
}
