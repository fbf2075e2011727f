import Foundation
import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// What a conversion will write, worked out from the images' headers alone before any byte is
/// written: every case's slice count and size, the exact shard bytes in each map storage mode
/// (compact: the range, since it depends on which classes each slice holds) and the free space
/// of OUT's filesystem. `convert --dry-run` prints it; `convert` refuses a run it says will fail.
public struct ConvertPreflight: Sendable {
    public struct CaseGeometry: Sendable {
        public var id: String
        public var slices: Int
        /// The slice before shaping to `geometry.size` (rows, columns).
        public var sourceHeight: Int
        public var sourceWidth: Int
        public var channels: Int
        /// (row mm, column mm) after resampling and shaping.
        public var spacing: [Double]
    }

    /// Shard bytes in one storage mode: exact for online and dense; compact from every slice
    /// holding one class (`bytes`) to every slice holding all (`maxBytes`).
    public struct Projection: Sendable {
        public var storage: MapsSpec.Storage
        public var bytes: Int
        public var maxBytes: Int
    }

    public var cases: [CaseGeometry] = []
    /// Cases whose header could not be read: (id, message naming the file).
    public var unreadable: [(id: String, message: String)] = []
    public var samples = 0
    public var shards = 0
    public var height = 0, width = 0, channels = 0, classes = 0
    public var storage: MapsSpec.Storage
    public var projections: [Projection] = []
    /// Free bytes for an unprivileged writer on OUT's filesystem (nil when it cannot be told).
    public var freeBytes: Int?
    /// Bytes of medprep output already in OUT that this run replaces (--force) or keeps (--resume).
    public var reusableBytes = 0
    /// Things a user should know that do not stop the run.
    public var warnings: [String] = []
    /// Why the run would fail (nil: it will not fail for any reason the headers can tell).
    public var failure: String?

    public var projected: Projection { projections.first { $0.storage == storage }! }
    /// Bytes the run must find free: the chosen mode's (compact: its smallest) minus reusable output.
    public var neededBytes: Int { max(0, projected.bytes - reusableBytes) }

    /// Plans a run of `cases` (this part's) with `manifest`; OUT is only looked at.
    public static func plan(run: ConvertRun) -> ConvertPreflight {
        let m = run.manifest
        var p = ConvertPreflight(storage: m.maps.storage)
        p.classes = run.labels.classes.count
        var first: CaseGeometry? = nil
        for c in run.cases {
            do {
                let g = try geometry(of: c, manifest: m)
                if let f = first, (g.channels, g.heightOut(m), g.widthOut(m)) != (f.channels, f.heightOut(m), f.widthOut(m)) {
                    p.failure = p.failure ?? "case '\(c.id)' gives \(g.channels)x\(g.heightOut(m))x\(g.widthOut(m)) slices but case '\(f.id)' gives \(f.channels)x\(f.heightOut(m))x\(f.widthOut(m)) (C x H x W); set geometry.size in the manifest so every slice is shaped to one size."
                }
                if let size = m.geometry.size, let why = m.geometry.fit.refusal(height: g.sourceHeight, width: g.sourceWidth, size: size) {
                    p.failure = p.failure ?? "case '\(c.id)': \(why)."
                }
                first = first ?? g
                p.cases.append(g)
            } catch {
                p.unreadable.append((c.id, (error as? MedprepError)?.description ?? "\(error)"))
            }
        }
        if !p.unreadable.isEmpty && !run.options.skipBad {
            p.failure = p.failure ?? "\(p.unreadable.count) case header(s) cannot be read (use --skip-bad to leave them out): \(p.unreadable[0].message)"
        }
        guard let f = first else {
            p.failure = p.failure ?? "no case header could be read."
            return p
        }
        p.samples = p.cases.reduce(0) { $0 + $1.slices }
        p.height = f.heightOut(m)
        p.width = f.widthOut(m)
        p.channels = f.channels
        p.shards = (p.samples + m.shardSize - 1) / m.shardSize
        for st in MapsSpec.Storage.allCases {
            var maps = m.maps
            maps.storage = st
            do {
                let layout = try ConvertRun.layout(maps: maps, dtypes: m.dtypes, channels: p.channels, height: p.height,
                                                   width: p.width, classes: p.classes)
                var lo = 0, hi = 0
                for k in 0..<p.shards {
                    let n = min(m.shardSize, p.samples - k * m.shardSize)
                    let v = run.options.medprepVersion
                    lo += ShardBuilder.fileBytes(layout: layout, samples: n, shardIndex: k, medprepVersion: v, presentPlanes: n)
                    hi += ShardBuilder.fileBytes(layout: layout, samples: n, shardIndex: k, medprepVersion: v,
                                                 presentPlanes: n * p.classes)
                }
                p.projections.append(Projection(storage: st, bytes: lo, maxBytes: hi))
            } catch {
                p.failure = p.failure ?? ((error as? MedprepError)?.message ?? "\(error)")
                return p
            }
        }
        let out = run.outDir
        if run.options.force || run.options.resume {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            p.reusableBytes = names.filter(OutputFiles.isOwn).reduce(0) { sum, name in
                sum + ((try? FileManager.default.attributesOfItem(atPath: out + "/" + name)[.size] as? Int) ?? 0)
            }
        }
        p.freeBytes = freeSpace(near: out)
        if let free = p.freeBytes, p.neededBytes > free {
            let online = p.projections.first { $0.storage == .online }!.bytes
            p.failure = p.failure ?? "the shards need \(mibText(p.neededBytes)) (maps.storage '\(p.storage.rawValue)') but the filesystem of '\(out)' has \(mibText(free)) free\(p.storage == .online ? "" : "; maps.storage 'online' needs \(mibText(online))")."
        } else if let free = p.freeBytes, p.storage == .compact, p.projected.maxBytes - p.reusableBytes > free {
            p.warnings.append("compact shards need \(mibText(p.projected.bytes))-\(mibText(p.projected.maxBytes)) (depending on how many classes each slice holds) and \(mibText(free)) are free: the run may not fit.")
        }
        return p
    }

    /// A case's slices from its image headers: reoriented and resampled as `CaseProcessor` does.
    package static func geometry(of c: CaseFiles, manifest m: Manifest) throws -> CaseGeometry {
        let probes = try c.images.map { try ImageProbe.probe(path: $0) }
        let ref = probes[0]
        var dims = ref.dims, spacing = ref.spacing
        var axis = m.geometry.slicing
        if ref.is2D {
            axis = .z
        } else {
            let t = try AxisReorientation.between(affine: ref.affine, target: m.geometry.orientation)
            dims = t.outputDims(dims)
            spacing = t.outputSpacing(spacing)
            if let target = m.geometry.targetSpacing {
                let rp = try ResamplePlan(dims: dims, spacing: spacing, target: target)
                dims = rp.outputDims
                spacing = rp.outputSpacing(spacing)
            }
        }
        let plane = Slicing.planeAxes(axis)
        let (h, w) = (dims[plane.rows], dims[plane.columns])
        let sp = SliceShaping.shapedSpacing(row: spacing[plane.rows], column: spacing[plane.columns], height: h, width: w,
                                            size: m.geometry.size, resize: m.geometry.fit == .resize)
        return CaseGeometry(id: c.id, slices: dims[axis.index], sourceHeight: h, sourceWidth: w,
                            channels: probes.reduce(0) { $0 + $1.channels }, spacing: [sp.row, sp.column])
    }

    /// statvfs's f_bavail × f_frsize of `path`, or of its nearest existing ancestor.
    package static func freeSpace(near path: String) -> Int? {
        var p = path.isEmpty ? "." : path
        while !FileManager.default.fileExists(atPath: p) {
            let parent = (p as NSString).deletingLastPathComponent
            if parent == p || parent.isEmpty { p = "."; break }
            p = parent
        }
        var s = statvfs()
        guard statvfs(p, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    public var json: JSON {
        .object([
            ("will_fail", .bool(failure != nil)), ("failure", failure.map(JSON.string) ?? .null),
            ("cases", .int(cases.count)), ("unreadable_cases", .array(unreadable.map { .object([("id", .string($0.id)), ("message", .string($0.message))]) })),
            ("samples", .int(samples)), ("shards", .int(shards)),
            ("slice", .object([("channels", .int(channels)), ("height", .int(height)), ("width", .int(width))])),
            ("classes", .int(classes)), ("storage", .string(storage.rawValue)),
            ("projected_bytes", .object(projections.map { pr in
                (pr.storage.rawValue, pr.bytes == pr.maxBytes ? .int(pr.bytes) : .object([("min", .int(pr.bytes)), ("max", .int(pr.maxBytes))]))
            })),
            ("needed_bytes", .int(neededBytes)), ("free_bytes", freeBytes.map(JSON.int) ?? .null),
            ("warnings", .array(warnings.map(JSON.string))),
            ("case_geometry", .array(cases.map { g in
                .object([("id", .string(g.id)), ("slices", .int(g.slices)), ("source_slice", .ints([g.sourceHeight, g.sourceWidth])),
                         ("slice_spacing_mm", .numbers(g.spacing))])
            })),
        ])
    }

    public var text: String {
        var lines = ["plan: \(cases.count) cases, \(samples) slices of \(channels)x\(height)x\(width) (C x H x W), \(classes) classes, \(shards) shards"]
        for pr in projections {
            let size = pr.bytes == pr.maxBytes ? "\(mibText(pr.bytes))" : "\(mibText(pr.bytes))-\(mibText(pr.maxBytes))"
            lines.append("  maps.storage \(pr.storage.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(size)\(pr.storage == storage ? "   <- this manifest" : "")")
        }
        lines.append("  free space   " + (freeBytes.map { "\(mibText($0))" } ?? "unknown") + (reusableBytes > 0 ? " (+\(mibText(reusableBytes)) of medprep output replaced)" : ""))
        for w in warnings { lines.append("warning: \(w)") }
        for u in unreadable { lines.append("unreadable: \(u.message)") }
        lines.append(failure.map { "will fail: \($0)" } ?? "will not fail for any reason the headers can tell (validation runs when converting).")
        return lines.joined(separator: "\n")
    }
}

/// "812.4", "3.07 GiB": sizes for people (the JSON has the bytes).
package func mibText(_ bytes: Int) -> String {
    bytes < 1 << 30 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576) : String(format: "%.2f GiB", Double(bytes) / 1_073_741_824)
}

package extension ConvertPreflight.CaseGeometry {
    package func heightOut(_ m: Manifest) -> Int { m.geometry.size?[0] ?? sourceHeight }
    package func widthOut(_ m: Manifest) -> Int { m.geometry.size?[1] ?? sourceWidth }
}
