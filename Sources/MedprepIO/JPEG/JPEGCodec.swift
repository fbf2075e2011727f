import CMedprep
import MedprepCore

/// JPEG reading through libjpeg-turbo (the `CMedprep` shim replaces libjpeg's `exit()` and
/// stderr paths and turns data warnings into errors).
///
/// How a JPEG maps to the image model (docs/images-2d.md): dims `[width, height]`, x = column,
/// y = row, pixel (0, 0) top-left; spacing `[1, 1]`; identity affine (`.image2D`); greyscale
/// gives 1 `uint8` channel, YCbCr and RGB give 3 (RGB). Decoding matches Pillow: ISLOW integer
/// IDCT and fancy upsampling. EXIF orientation is not applied (Pillow's `Image.open` does not
/// either). CMYK/YCCK, 12-bit and lossless JPEGs are refused as `.unsupported`; a file that ends
/// early is `.truncated`, damaged entropy data is `.corruptImage`.
public enum JPEGCodec {
    /// Largest decoded pixel buffer `decode` accepts by default (2 GiB).
    public static let defaultMaxDecodedBytes = 1 << 31

    /// Decodes a whole JPEG file held in memory. `path` is used in errors only.
    public static func decode(_ bytes: [UInt8], path: String) throws -> MedicalImage {
        try decode(bytes, path: path, maxDecodedBytes: defaultMaxDecodedBytes)
    }

    /// As `decode(_:path:)`, refusing images whose decoded pixels would exceed `maxDecodedBytes`.
    public static func decode(_ bytes: [UInt8], path: String, maxDecodedBytes: Int) throws -> MedicalImage {
        if bytes.count < 3 {
            if bytes.isEmpty {
                throw MedprepError(.truncated, path: path, "the JPEG file is empty ('0' bytes).")
            }
            if [0xFF, 0xD8, 0xFF].starts(with: bytes) {
                throw MedprepError(.truncated, path: path, "the JPEG file is only '\(bytes.count)' bytes long.")
            }
        }
        guard bytes.count >= 2, bytes[0] == 0xFF, bytes[1] == 0xD8 else {
            throw MedprepError(.badMagic, path: path,
                               "not a JPEG file: it starts with '\(Image2DSupport.hexBytes(bytes.prefix(4)))', expected the SOI marker 'ff d8'.")
        }
        var result = mp_jpeg_image()
        var message = [CChar](repeating: 0, count: 512)
        let status = bytes.withUnsafeBufferPointer { input in
            message.withUnsafeMutableBufferPointer { msg in
                mp_jpeg_decode(input.baseAddress, input.count, UInt64(max(0, maxDecodedBytes)), &result,
                               msg.baseAddress, msg.count)
            }
        }
        guard Int(status) == MP_OK else {
            let text = Image2DSupport.cMessage(message)
            switch Int(status) {
            case MP_ERR_TRUNCATED:
                throw MedprepError(.truncated, path: path, "the JPEG file is truncated after '\(bytes.count)' bytes: \(text).")
            case MP_ERR_TOO_LARGE:
                throw MedprepError(.tooLarge, path: path, "the JPEG image is too large: \(text).")
            case MP_ERR_NOMEM:
                throw MedprepError(.tooLarge, path: path, "JPEG decoding failed: \(text).")
            case MP_ERR_UNSUPPORTED:
                throw MedprepError(.unsupported, path: path, "unsupported JPEG: \(text).")
            default:
                throw MedprepError(.corruptImage, path: path, "the JPEG data is corrupt: \(text).")
            }
        }
        defer { mp_free(result.pixels) }
        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        let count = width * height * channels
        guard result.pixels_len == count else {
            throw MedprepError(.corruptImage, path: path,
                               "JPEG decoder returned '\(result.pixels_len)' bytes for a '\(width)x\(height)x\(channels)' image.")
        }
        let voxels = VoxelBuffer.uint8(Image2DSupport.copySamples(result.pixels, count: count, as: UInt8.self))
        return MedicalImage(format: .jpeg, dims: [width, height], spacing: [1, 1], channels: channels,
                            affine: .identity, affineSource: .image2D, voxels: voxels,
                            sourceDatatype: describe(result))
    }

    /// Reads and decodes a JPEG file.
    public static func read(path: String) throws -> MedicalImage {
        try decode(FileIO.readAll(path), path: path)
    }

    /// "uint8", "uint8 YCbCr 4:2:0", "uint8 RGB progressive"... for reports.
    static func describe(_ r: mp_jpeg_image) -> String {
        var parts = ["uint8"]
        switch r.color_space {
        case 2: parts.append("RGB")
        case 3:
            parts.append("YCbCr")
            let (h0, v0, h1, v1, h2, v2) = (r.h_samp.0, r.v_samp.0, r.h_samp.1, r.v_samp.1, r.h_samp.2, r.v_samp.2)
            if h1 == h2 && v1 == v2 && h1 > 0 && v1 > 0 {
                switch (h0 / h1, v0 / v1, h0 % h1, v0 % v1) {
                case (1, 1, 0, 0): parts.append("4:4:4")
                case (2, 1, 0, 0): parts.append("4:2:2")
                case (2, 2, 0, 0): parts.append("4:2:0")
                case (1, 2, 0, 0): parts.append("4:4:0")
                case (4, 1, 0, 0): parts.append("4:1:1")
                default: parts.append("\(h0)x\(v0),\(h1)x\(v1),\(h2)x\(v2)")
                }
            } else {
                parts.append("\(h0)x\(v0),\(h1)x\(v1),\(h2)x\(v2)")
            }
        default: break
        }
        if r.progressive != 0 { parts.append("progressive") }
        if r.arithmetic != 0 { parts.append("arithmetic") }
        return parts.joined(separator: " ")
    }

    /// The linked libjpeg-turbo version, e.g. 2001005 for 2.1.5 (0 when unknown).
    public static var libraryVersion: Int { Int(mp_jpeg_library_version()) }
}
