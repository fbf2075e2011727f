import ArgumentParser
import MedprepCore
import MedprepIO
import MedprepProcessing
#if canImport(Glibc)
import Glibc
#endif

/// `medprep maps MASK --out DIR`: signed distance and RRW maps per class, as 4D float32 NIfTI
/// (last axis = class) with the mask's affine. Conventions: docs/distance-maps.md.
struct Maps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-class signed distance (Boundary loss) and RRW (Region-wise loss) maps of a label mask.",
        discussion: """
            Writes DIR/sdf.nii.gz and/or DIR/rrw.nii.gz (and sdf_s2.nii.gz ... for --scales), float32, \
            one volume per class along the last axis, same affine as the mask. 3D masks get maps per \
            2D slice along --axis (what 2D training sees) unless --3d is given. Conventions, units and \
            the empty/full class rules are in docs/distance-maps.md.
            """)

    enum Convention: String, ExpressibleByArgument, CaseIterable {
        case boundary, plain, itk
        var value: SDFConvention { SDFConvention(rawValue: rawValue)! }
    }

    enum Units: String, ExpressibleByArgument, CaseIterable {
        case px, mm
        var value: DistanceUnits { DistanceUnits(rawValue: rawValue)! }
    }

    enum Axis: String, ExpressibleByArgument, CaseIterable {
        case x, y, z
        var index: Int { ["x": 0, "y": 1, "z": 2][rawValue]! }
    }

    @Argument(help: "Label mask (NIfTI or PNG); labels are the integer values stored.") var mask: String
    @Option(help: "Output folder (created if missing).") var out: String
    @Flag(help: "Signed distance maps (default: both kinds when neither --sdf nor --rrw is given).") var sdf = false
    @Flag(help: "Rectified region-wise maps.") var rrw = false
    @Option(help: "Signed distance convention: boundary (Kervadec, default), plain, itk.") var convention: Convention = .boundary
    @Option(help: "Distance units: px (voxel steps) or mm (pixdim spacing).") var units: Units = .px
    @Option(help: "Slice axis for 3D masks (default z).") var axis: Axis?
    @Flag(name: .customLong("3d"), help: "Compute 3D maps for 3D masks instead of per slice.") var threeD = false
    @Option(help: "Comma-separated scales for deep supervision, e.g. 1,2,4 (nearest downsampling, index i*s).")
    var scales: String = "1"
    @Option(help: "Comma-separated class values (default 0...largest label).") var classes: String?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(name: .customLong("no-gzip"), help: "Write .nii instead of .nii.gz.") var noGzip = false
    @Flag(help: "Print the summary as JSON.") var json = false
    @Flag(help: "Report the time spent computing maps (not reading or writing).") var timing = false
    @Option(name: .customLong("repeat"), help: ArgumentHelp("Compute this many times (benchmarks).", visibility: .hidden))
    var repeats: Int = 1

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads '\(threads)' must be at least 1.") }
        if repeats < 1 { throw ValidationError("--repeat '\(repeats)' must be at least 1.") }
        if threeD && axis != nil { throw ValidationError("--3d and --axis '\(axis!.rawValue)' cannot be combined.") }
        _ = try parsedScales()
        _ = try parsedClasses()
    }

    func parsedScales() throws -> [Int] {
        let parts = scales.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters() }
        var out = [Int]()
        for p in parts {
            guard let v = Int(p), [1, 2, 4, 8].contains(v) else {
                throw ValidationError("--scales value '\(p)' must be one of 1, 2, 4, 8.")
            }
            guard !out.contains(v) else { throw ValidationError("--scales repeats '\(v)'.") }
            out.append(v)
        }
        return out
    }

    func parsedClasses() throws -> [Int]? {
        guard let classes else { return nil }
        var out = [Int]()
        for p in classes.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters() }) {
            guard let v = Int(p) else { throw ValidationError("--classes value '\(p)' is not an integer.") }
            guard !out.contains(v) else { throw ValidationError("--classes repeats '\(v)'.") }
            out.append(v)
        }
        return out
    }

    func run() throws {
        do {
            try runMaps()
        } catch let e as MedprepError {
            printError(e.description)
            throw ExitCode(1)
        }
    }

    func runMaps() throws {
        let image = try ImageReader.read(path: mask)
        let (labels, grid) = try Self.labelGrid(image, path: mask)
        let scaleList = try parsedScales()
        let classList = try parsedClasses() ?? DistanceMaps.defaultClasses(labels)
        let wantSDF = sdf || !rrw, wantRRW = rrw || !sdf
        // A single-slice mask is a 2D image; a 3D mask is sliced along --axis unless --3d.
        let mode: MapMode = grid.rank == 3 && !threeD ? .slices(axis: (axis ?? .z).index) : .volume
        let virtualAxis: VirtualVoxelAxis = image.format == .png || image.format == .jpeg ? .last : .first
        let options = DistanceMapOptions(sdf: wantSDF ? convention.value : nil, rrw: wantRRW, units: units.value,
                                         mode: mode, virtualVoxelAxis: virtualAxis, threads: threads ?? defaultThreadCount)

        var seconds: [Double] = []
        var results: [(scale: Int, result: DistanceMapResult)] = []
        for _ in 0..<repeats {
            results = []  // a repeat reuses the memory of the one before (steady state, as in a pipeline)
            let t0 = monotonicSeconds()
            results = try DistanceMaps.multiScale(labels: labels, grid: grid, classes: classList, scales: scaleList,
                                                  options: options)
            seconds.append(monotonicSeconds() - t0)
        }

        try Self.makeDirectories(out)
        var scaleJSON: [JSON] = []
        var text: [String] = []
        let modeText: String
        switch mode {
        case .volume: modeText = grid.rank == 3 ? "3d" : "2d"
        case .slices(let a): modeText = "slices along \(["x", "y", "z"][a])"
        }
        text.append("\(mask): \(grid.dims.map { String($0) }.joined(separator: "x")) labels, \(modeText), classes "
            + classList.map { String($0) }.joined(separator: ",")
            + (wantSDF ? ", sdf \(convention.rawValue)" : "") + (wantRRW ? ", rrw" : "") + ", \(units.rawValue)")
        for (s, res) in results {
            let suffix = s == 1 ? "" : "_s\(s)"
            let ext = noGzip ? ".nii" : ".nii.gz"
            var files: [(String, JSON)] = []
            let affine = Self.scaledAffine(image.affine, from: grid, to: res.grid)
            for (kind, data) in [("sdf", res.sdf), ("rrw", res.rrw)] {
                guard let data else { continue }
                let path = Self.join(out, kind + suffix + ext)
                let g = res.grid
                let img = MedicalImage(format: .nifti1, dims: [g.nx, g.ny, g.nz, classList.count],
                                       spacing: (0..<3).map { $0 < g.spacing.count ? g.spacing[$0] : 1 } + [1],
                                       affine: affine, affineSource: image.affineSource, voxels: .float32(data))
                try NIfTIWriter.write(img, to: path, gzip: !noGzip)
                files.append((kind, .string(path)))
            }
            let dimsText = res.grid.dims.map { String($0) }.joined(separator: "x")
            text.append("scale \(s): \(dimsText), spacing (\(res.grid.spacing.map { formatShort($0) }.joined(separator: ", ")))")
            let summaries = res.summaries(threads: options.threads)
            for c in summaries {
                var line = "  class \(c.classValue): \(c.voxels) voxels"
                if let a = c.sdfMin, let b = c.sdfMax { line += ", sdf \(Self.fmt(a)) .. \(Self.fmt(b))" }
                if let a = c.rrwMin, let b = c.rrwMax { line += ", rrw \(Self.fmt(a)) .. \(Self.fmt(b))" }
                text.append(line)
            }
            text.append("  wrote " + files.map { if case .string(let p) = $0.1 { return p }; return "" }.joined(separator: ", "))
            scaleJSON.append(.object([
                ("scale", .int(s)),
                ("dims", .array(res.grid.dims.map { .int($0) })),
                ("spacing", .numbers(res.grid.spacing)),
                ("files", .object(files)),
                ("classes", .array(summaries.map { c in
                    .object([("class", .int(c.classValue)), ("voxels", .int(c.voxels)),
                             ("sdf_min", c.sdfMin.map { .number(Double($0)) } ?? .null),
                             ("sdf_max", c.sdfMax.map { .number(Double($0)) } ?? .null),
                             ("rrw_min", c.rrwMin.map { .number(Double($0)) } ?? .null),
                             ("rrw_max", c.rrwMax.map { .number(Double($0)) } ?? .null)])
                })),
            ]))
        }
        if timing {
            text.append("computed in \(Self.fmt(Float(seconds.min()!))) s (best of \(seconds.count), \(options.threads) threads)")
        }
        if json {
            var obj: [(String, JSON)] = [
                ("mask", .string(mask)),
                ("dims", .array(grid.dims.map { .int($0) })),
                ("spacing", .numbers(grid.spacing)),
                ("mode", .string(modeText)),
                ("sdf", wantSDF ? .string(convention.rawValue) : .null),
                ("rrw", .bool(wantRRW)),
                ("units", .string(units.rawValue)),
                ("virtual_voxel_axis", .string(virtualAxis.rawValue)),
                ("classes", .array(classList.map { .int($0) })),
                ("scales", .array(scaleJSON)),
            ]
            if timing {
                obj.append(("threads", .int(options.threads)))
                obj.append(("compute_seconds", .numbers(seconds)))
            }
            print(JSON.object(obj).serialized(indent: 2))
        } else {
            print(text.joined(separator: "\n"))
        }
    }

    // MARK: - helpers

    /// Labels as Int32 and the grid: 2D masks (PNG, or a NIfTI with one slice) give a 2D grid.
    static func labelGrid(_ image: MedicalImage, path: String) throws -> ([Int32], MapGrid) {
        guard image.channels == 1 else {
            throw MedprepError(.unsupported, path: path, "mask has \(image.channels) channels; expected a single-channel label image.")
        }
        guard image.frameCount == 1 else {
            throw MedprepError(.unsupported, path: path, "mask has \(image.frameCount) frames; expected one 2D or 3D label volume.")
        }
        let sd = image.spatialDims
        let dims = sd[2] == 1 ? [sd[0], sd[1]] : sd
        let spacing = (0..<dims.count).map { $0 < image.spacing.count ? image.spacing[$0] : 1 }
        var labels = [Int32]()
        labels.reserveCapacity(image.voxelCount)
        let unscaled = image.scaling.map { $0.slope == 1 && $0.intercept == 0 } ?? true
        switch image.voxels {
        case .uint8(let a) where unscaled: labels = a.map { Int32($0) }
        case .int8(let a) where unscaled: labels = a.map { Int32($0) }
        case .int16(let a) where unscaled: labels = a.map { Int32($0) }
        case .uint16(let a) where unscaled: labels = a.map { Int32($0) }
        case .int32(let a) where unscaled: labels = a
        default:
            var bad: Double?
            let s = image.scaling
            image.voxels.withDoubles { buf in
                for raw in buf {
                    let v = s.map { raw * $0.slope + $0.intercept } ?? raw
                    if v.rounded() != v || abs(v) > Double(Int32.max) {
                        if bad == nil { bad = v }
                        labels.append(0)
                    } else {
                        labels.append(Int32(v))
                    }
                }
            }
            if let bad {
                throw MedprepError(.invalidArgument, path: path,
                                   "mask value '\(bad)' is not an integer label (labels must be whole numbers within Int32).")
            }
        }
        return (labels, try MapGrid(dims: dims, spacing: spacing))
    }

    /// The mask affine with each downsampled axis's column multiplied by its factor: coarse voxel
    /// i sits where source voxel i*factor sits.
    static func scaledAffine(_ a: Affine4, from fine: MapGrid, to coarse: MapGrid) -> Affine4 {
        var out = a
        let f = [fine.nx, fine.ny, fine.nz], c = [coarse.nx, coarse.ny, coarse.nz]
        for axis in 0..<3 where c[axis] != f[axis] {
            let factor = axis < coarse.spacing.count ? coarse.spacing[axis] / fine.spacing[axis] : 1
            for r in 0..<3 { out[r, axis] = a[r, axis] * factor.rounded() }
        }
        return out
    }

    static func fmt(_ v: Float) -> String { formatShort(Double(v)) }

    static func join(_ dir: String, _ name: String) -> String { dir.hasSuffix("/") ? dir + name : dir + "/" + name }

    static func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            current += (current.isEmpty || current.hasSuffix("/") ? "" : "/") + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw MedprepError(.ioFailure, path: current, "cannot create output folder (errno \(errno)).")
            }
        }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw MedprepError(.ioFailure, path: path, "output path exists and is not a folder.")
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
