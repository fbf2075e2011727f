import MedprepCore
import MedprepIO

/// What `medprep info` reports about one file, as JSON and as text.
struct ImageSummary {
    let path: String
    let image: MedicalImage
    let stats: Moments
    let sha256: String

    init(path: String) throws {
        let bytes = try FileIO.readAll(path)
        self.path = path
        self.sha256 = SHA256.hex(bytes)
        self.image = try ImageReader.read(path: path)
        self.stats = Moments.of(image, threads: defaultThreadCount)
    }

    var json: JSON {
        .object([
            ("path", .string(path)),
            ("format", .string(image.format.rawValue)),
            ("dims", .ints(image.dims)),
            ("datatype", .string(image.sourceDatatype)),
            ("channels", .int(image.channels)),
            ("spacing", .numbers(image.spacing)),
            ("affine", .array(image.affine.rows.map { .numbers($0) })),
            ("affine_source", .string(image.affineSource.rawValue)),
            ("orientation", .string(image.orientation)),
            ("scl_slope", image.scaling.map { .number($0.slope) } ?? .null),
            ("scl_inter", image.scaling.map { .number($0.intercept) } ?? .null),
            ("frames", .int(image.frameCount)),
            ("stats", .object([
                ("min", .number(stats.min)), ("max", .number(stats.max)),
                ("mean", .number(stats.mean)), ("std", .number(stats.std)),
                ("count", .int(stats.count)), ("nonfinite", .int(stats.nonFinite)),
            ])),
            ("sha256", .string(sha256)),
            ("memory_bytes", .int(image.memoryBytes)),
        ])
    }

    var text: String {
        let g = { (v: Double) in formatShort(v) }
        var lines = [path]
        lines.append("  \(image.summary)")
        lines.append("  datatype \(image.sourceDatatype), affine from \(image.affineSource.rawValue)"
            + (image.frameCount > 1 ? ", \(image.frameCount) frames" : ""))
        for row in image.affine.rows.prefix(3) {
            lines.append("    [" + row.map { g($0) }.joined(separator: ", ") + "]")
        }
        if let s = image.scaling { lines.append("  scaling: value = stored x \(g(s.slope)) + \(g(s.intercept))") }
        lines.append("  values: min \(g(stats.min)), max \(g(stats.max)), mean \(g(stats.mean)), std \(g(stats.std))"
            + (stats.nonFinite > 0 ? ", \(stats.nonFinite) non-finite" : ""))
        lines.append("  sha256 \(sha256)")
        return lines.joined(separator: "\n")
    }

    static func errorJSON(path: String, _ error: Error) -> JSON {
        let e = error as? MedprepError ?? MedprepError(.ioFailure, path: path, "\(error)")
        return .object([("path", .string(path)),
                        ("error", .object([("code", .string(e.code.rawValue)), ("message", .string(e.at(path).description))]))])
    }
}
