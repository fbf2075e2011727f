import MedprepCore

/// One 3D frame of a case as the per-case steps of `medprep convert` see it: voxels x fastest
/// (`index = ((z * ny + y) * nx + x) * channels + c`, as `MedicalImage` stores them), the grid,
/// the voxel sizes and the affine.
///
/// Images are `Volume3D<Float>` (scaled intensities, what a network consumes); label maps are
/// `Volume3D<UInt16>`: labels are class indices, never negative, and 16 bits hold any realistic
/// class count at half the memory of `Int32` (the distance and region maps key classes by
/// `UInt16` too). `Element` only has to be bitwise copyable: reorientation, slicing, cropping
/// and padding move bytes and work for any element type.
public struct Volume3D<Element: BitwiseCopyable & Sendable>: Sendable {
    public var voxels: [Element]
    /// `[nx, ny, nz]`, always three (a 2D image is `[width, height, 1]`).
    public var dims: [Int]
    /// Voxel size along each of `dims`, millimetres (NIfTI pixdim).
    public var spacing: [Double]
    /// Interleaved values per voxel (3 for RGB); 1 for labels.
    public var channels: Int
    public var affine: Affine4

    /// Checks that sizes, spacing and voxel count agree; 1 or 2 dims are padded with 1.
    public init(voxels: [Element], dims: [Int], spacing: [Double] = [1, 1, 1], channels: Int = 1,
                affine: Affine4 = .identity) throws {
        guard (1...3).contains(dims.count), dims.allSatisfy({ $0 >= 1 }) else {
            throw MedprepError(.invalidArgument, "volume dims '\(dims)' must be 1 to 3 sizes of at least 1.")
        }
        guard channels >= 1 else {
            throw MedprepError(.invalidArgument, "channel count '\(channels)' must be at least 1.")
        }
        let d3 = (0..<3).map { $0 < dims.count ? dims[$0] : 1 }
        let sp = (0..<3).map { $0 < spacing.count ? spacing[$0] : 1 }
        for s in sp where !(s.isFinite && s > 0) {
            throw MedprepError(.invalidArgument, "voxel spacing '\(s)' must be finite and positive.")
        }
        let expected = d3.reduce(1, *) * channels
        guard voxels.count == expected else {
            throw MedprepError(.mismatch, "volume has \(voxels.count) values but dims \(d3) x \(channels) channels need \(expected).")
        }
        self.voxels = voxels
        self.dims = d3
        self.spacing = sp
        self.channels = channels
        self.affine = affine
    }

    /// Number of grid points (not counting channels).
    public var voxelCount: Int { dims[0] * dims[1] * dims[2] }

    /// nibabel's orientation code of the affine, e.g. "RAS".
    public var orientation: String { Orientation.code(affine) }

    /// Same geometry, other values (for an image and its label map).
    public func sameGrid(as other: Volume3D<some BitwiseCopyable & Sendable>) -> Bool {
        dims == other.dims && affine.maxAbsDifference(other.affine) <= 1e-6
    }
}

extension Volume3D where Element == Float {
    /// Frame `frame` of an image as scaled floats (`scl_slope`/`scl_inter` applied).
    public init(image: MedicalImage, frame: Int = 0) throws {
        let f = image.frameCount > 1 || frame != 0 ? try image.frame(frame) : image
        try self.init(voxels: f.scaledFloats(), dims: f.spatialDims, spacing: Array(f.spacing.prefix(3)),
                      channels: f.channels, affine: f.affine)
    }
}

extension Volume3D where Element == UInt16 {
    /// Frame `frame` of a label map. Every (scaled) value must be an integer in 0...65535;
    /// the first that is not is named with its voxel index.
    public init(labels image: MedicalImage, frame: Int = 0) throws {
        let f = image.frameCount > 1 || frame != 0 ? try image.frame(frame) : image
        guard f.channels == 1 else {
            throw MedprepError(.unsupported, "a label map must have one channel, not \(f.channels).")
        }
        var out = [UInt16](repeating: 0, count: f.voxelCount)
        var bad: (Int, Double)?
        var i = 0
        let s = f.scaling
        f.voxels.withDoubles { buf in
            guard bad == nil else { i += buf.count; return }
            for raw in buf {
                let v = s.map { raw * $0.slope + $0.intercept } ?? raw
                if v >= 0 && v <= 65535 && v == v.rounded() {
                    out[i] = UInt16(v)
                } else if bad == nil {
                    bad = (i, v)
                    break
                }
                i += 1
            }
        }
        if let (at, v) = bad {
            throw MedprepError(.invalidArgument, "label value '\(v)' at voxel \(at) is not an integer in 0...65535.")
        }
        try self.init(voxels: out, dims: f.spatialDims, spacing: Array(f.spacing.prefix(3)), channels: 1, affine: f.affine)
    }
}
