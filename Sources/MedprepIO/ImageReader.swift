import MedprepCore

/// One entry point for every supported format, chosen by extension, then by magic bytes.
public enum ImageReader {
    public static func read(path: String) throws -> MedicalImage {
        let lower = path.lowercased()
        if NIfTIReader.handles(lower) { return try NIfTIReader.read(path: path) }
        if lower.hasSuffix(".png") { return try PNGCodec.read(path: path) }
        if lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") { return try JPEGCodec.read(path: path) }
        // Unknown extension: sniff the first bytes.
        let bytes = try FileIO.readAll(path)
        if bytes.starts(with: [0x89, 0x50, 0x4e, 0x47]) { return try PNGCodec.decode(bytes, path: path) }
        if bytes.starts(with: [0xff, 0xd8, 0xff]) { return try JPEGCodec.decode(bytes, path: path) }
        throw MedprepError(.unsupported, path: path,
                           "unrecognised file type (expected .nii, .nii.gz, .hdr/.img, .png, .jpg or .jpeg).")
    }
}
