import MedprepCore

/// An image's grid from its header alone: what convert's preflight needs to project a dataset's
/// shards before reading any voxel (NIfTI: the header; PNG: IHDR; JPEG: the first SOF marker).
public struct ImageProbe: Sendable, Equatable {
    /// Spatial sizes, x fastest, padded with 1 to three axes.
    public var dims: [Int]
    /// Voxel sizes of those axes (1 for 2D images).
    public var spacing: [Double]
    public var affine: Affine4
    /// Channels per voxel as the readers deliver them (PNG: grey 1, grey+alpha 2, RGB 3, RGBA 4,
    /// palette 1; JPEG: its components; NIfTI: 3 for RGB24, else 1).
    public var channels: Int
    /// PNG or JPEG (slices are the image itself).
    public var is2D: Bool

    /// Largest prefix read to find a JPEG's frame header (EXIF and ICC segments come first).
    static let jpegScanLimit = 1 << 20

    public static func probe(path: String) throws -> ImageProbe {
        let lower = path.lowercased()
        if NIfTIReader.handles(lower) {
            let (_, layout) = try NIfTIReader.readHeader(path: path)
            let d = layout.dims
            return ImageProbe(dims: (0..<3).map { $0 < d.count ? d[$0] : 1 },
                              spacing: (0..<3).map { $0 < layout.spacing.count ? layout.spacing[$0] : 1 },
                              affine: layout.affine, channels: layout.datatype.channels, is2D: d.count == 2)
        }
        let handle = try FileIO.ReadHandle(path)
        // 64 KiB holds a PNG's IHDR and nearly every JPEG's frame header; a JPEG whose EXIF or ICC
        // segments push the frame header further is read again up to `jpegScanLimit`.
        var head = try handle.read(count: min(handle.size, 1 << 16), at: 0)
        if head.starts(with: [0xff, 0xd8]), handle.size > head.count, (try? jpegFrame(head, path: path)) == nil {
            head = try handle.read(count: min(handle.size, jpegScanLimit), at: 0)
        }
        func flat(_ w: Int, _ h: Int, _ c: Int) -> ImageProbe {
            ImageProbe(dims: [w, h, 1], spacing: [1, 1, 1], affine: .identity, channels: c, is2D: true)
        }
        if head.starts(with: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) {
            guard head.count >= 26, Array(head[12..<16]) == Array("IHDR".utf8) else {
                throw MedprepError(.truncated, path: path, "PNG has no IHDR chunk where the format puts it (truncated or not a PNG?).")
            }
            let w = be32(head, 16), h = be32(head, 20)
            let channels: Int
            switch head[25] {
            case 0, 3: channels = 1
            case 4: channels = 2
            case 2: channels = 3
            case 6: channels = 4
            default: throw MedprepError(.corruptImage, path: path, "PNG colour type '\(head[25])' is not one of 0, 2, 3, 4, 6.")
            }
            guard w >= 1, h >= 1 else { throw MedprepError(.corruptImage, path: path, "PNG IHDR declares a '\(w)x\(h)' image.") }
            return flat(w, h, channels)
        }
        if head.starts(with: [0xff, 0xd8]) {
            if let (w, h, c) = try jpegFrame(head, path: path) { return flat(w, h, c) }
            throw MedprepError(.corruptImage, path: path, "JPEG has no frame header (SOF marker) in its first \(head.count) bytes.")
        }
        throw MedprepError(.unsupported, path: path, "unrecognised file type (expected .nii, .nii.gz, .hdr/.img, .png, .jpg or .jpeg).")
    }

    /// (width, height, components) from the first SOF marker in `head`; nil when `head` ends
    /// (or the scan starts) before one.
    static func jpegFrame(_ head: [UInt8], path: String) throws -> (Int, Int, Int)? {
        // Markers: FF xx, then a big-endian length for every marker but SOI/EOI/RSTn/TEM.
        var i = 2
        while i + 4 <= head.count {
            guard head[i] == 0xff else { return nil }
            let marker = head[i + 1]
            if marker == 0xff { i += 1; continue }  // fill byte
            if marker == 0xd8 || marker == 0x01 || (0xd0...0xd7).contains(marker) { i += 2; continue }
            let length = Int(head[i + 2]) << 8 | Int(head[i + 3])
            if (0xc0...0xcf).contains(marker) && ![0xc4, 0xc8, 0xcc].contains(marker) {
                guard i + 10 <= head.count else { return nil }
                let h = Int(head[i + 5]) << 8 | Int(head[i + 6]), w = Int(head[i + 7]) << 8 | Int(head[i + 8])
                let c = Int(head[i + 9])
                guard w >= 1, h >= 1, c >= 1 else {
                    throw MedprepError(.corruptImage, path: path, "JPEG frame header declares a '\(w)x\(h)' image with \(c) components.")
                }
                return (w, h, c)
            }
            if marker == 0xda || marker == 0xd9 || length < 2 { return nil }  // scan data or end before a frame header
            i += 2 + length
        }
        return nil
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int {
        Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
    }
}
