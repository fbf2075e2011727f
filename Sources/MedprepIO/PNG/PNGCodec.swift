import CMedprep
import MedprepCore

/// PNG reading and writing through libpng (the `CMedprep` shim traps libpng's longjmp errors).
///
/// How a PNG maps to the image model (docs/images-2d.md):
/// - dims `[width, height]`, x = column, y = row, pixel (0, 0) top-left; spacing `[1, 1]`;
///   identity affine with `affineSource == .image2D`.
/// - channels: grey 1, grey+alpha 2, RGB 3, RGBA 4, palette 1 (the indices, as labels).
/// - 16-bit files give `uint16` voxels (never scaled to 8 bits); 8-bit files `uint8`;
///   1/2/4-bit grey is scaled to 0...255 as Pillow reads it (x255, x85, x17);
///   1/2/4/8-bit palette files keep their indices and the PLTE goes to `palette`.
/// - tRNS, gamma, sBIT and colour profiles are ignored: the stored samples are returned.
public enum PNGCodec {
    /// The eight bytes every PNG starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Largest decoded pixel buffer `decode` accepts by default (2 GiB).
    public static let defaultMaxDecodedBytes = 1 << 31

    /// Decodes a whole PNG file held in memory. `path` is used in errors only.
    public static func decode(_ bytes: [UInt8], path: String) throws -> MedicalImage {
        try decode(bytes, path: path, maxDecodedBytes: defaultMaxDecodedBytes)
    }

    /// As `decode(_:path:)`, refusing images whose decoded pixels would exceed `maxDecodedBytes`.
    public static func decode(_ bytes: [UInt8], path: String, maxDecodedBytes: Int) throws -> MedicalImage {
        try checkSignature(bytes, path: path)
        var result = mp_png_image()
        var palette = [UInt8](repeating: 0, count: 768)
        var message = [CChar](repeating: 0, count: 512)
        let status = bytes.withUnsafeBufferPointer { input in
            palette.withUnsafeMutableBufferPointer { pal in
                message.withUnsafeMutableBufferPointer { msg in
                    mp_png_decode(input.baseAddress, input.count, UInt64(max(0, maxDecodedBytes)), &result,
                                  pal.baseAddress, msg.baseAddress, msg.count)
                }
            }
        }
        guard Int(status) == MP_OK else {
            throw shimError(status, message, path: path)
        }
        defer { mp_free(result.pixels) }

        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        let count = width * height * channels
        guard result.pixels_len == count * Int(result.bytes_per_sample) else {
            throw MedprepError(.corruptImage, path: path,
                               "PNG decoder returned '\(result.pixels_len)' bytes for a '\(width)x\(height)x\(channels)' image.")
        }
        let voxels: VoxelBuffer
        if result.bytes_per_sample == 2 {
            voxels = .uint16(Image2DSupport.copySamples(result.pixels, count: count, as: UInt16.self))
        } else {
            voxels = .uint8(Image2DSupport.copySamples(result.pixels, count: count, as: UInt8.self))
        }
        let bitDepth = Int(result.bit_depth)
        let isPalette = result.color_type == 3
        let datatype: String
        if isPalette {
            datatype = bitDepth < 8 ? "uint8 palette (\(bitDepth)-bit)" : "uint8 palette"
        } else if bitDepth < 8 {
            datatype = "uint8 (\(bitDepth)-bit)"
        } else {
            datatype = bitDepth == 16 ? "uint16" : "uint8"
        }
        let pal: [UInt8]? = isPalette ? Array(palette.prefix(Int(result.palette_entries) * 3)) : nil
        return MedicalImage(format: .png, dims: [width, height], spacing: [1, 1], channels: channels,
                            affine: .identity, affineSource: .image2D, voxels: voxels, palette: pal,
                            sourceDatatype: datatype)
    }

    /// Reads and decodes a PNG file.
    public static func read(path: String) throws -> MedicalImage {
        try decode(FileIO.readAll(path), path: path)
    }

    /// Encodes a 2D image as PNG: `uint8` or `uint16` samples, 1 to 4 channels
    /// (grey, grey+alpha, RGB, RGBA). A 1-channel `uint8` image with a `palette` is written as a
    /// palette PNG (its values are the indices). zlib level 6, no interlacing, no ancillary chunks.
    public static func encode(_ image: MedicalImage) throws -> [UInt8] {
        try encode(image, compressionLevel: 6)
    }

    /// As `encode(_:)` with an explicit zlib level (0 = stored ... 9 = smallest).
    public static func encode(_ image: MedicalImage, compressionLevel: Int) throws -> [UInt8] {
        guard image.dims.count >= 2, image.dims.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw MedprepError(.unsupported, "PNG holds 2D images; the image has dims '\(image.dims)'.")
        }
        let width = image.dims[0], height = image.dims[1]
        guard width >= 1, height >= 1, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw MedprepError(.unsupported, "PNG width and height must be 1 to 2^31-1; the image is '\(width)x\(height)'.")
        }
        guard (1...4).contains(image.channels) else {
            throw MedprepError(.unsupported, "PNG holds 1 to 4 channels; the image has '\(image.channels)'.")
        }
        var paletteBytes: [UInt8] = []
        if let palette = image.palette {
            guard image.channels == 1, image.voxels.type == .uint8 else {
                throw MedprepError(.invalidArgument,
                                   "a palette PNG needs 1 channel of uint8 indices; the image has '\(image.channels)' channel(s) of '\(image.voxels.type.rawValue)'.")
            }
            guard !palette.isEmpty, palette.count % 3 == 0, palette.count <= 768 else {
                throw MedprepError(.invalidArgument,
                                   "a PNG palette holds 1 to 256 RGB triples; the image's palette has '\(palette.count)' bytes.")
            }
            paletteBytes = palette
        }
        let entries = paletteBytes.count / 3
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        var message = [CChar](repeating: 0, count: 512)
        let w = UInt32(width), h = UInt32(height), ch = UInt32(image.channels)
        let level = Int32(max(0, min(9, compressionLevel)))
        let status: Int32
        switch image.voxels {
        case .uint8(let samples):
            if entries > 0, let bad = samples.firstIndex(where: { Int($0) >= entries }) {
                throw MedprepError(.invalidArgument,
                                   "palette index '\(samples[bad])' at sample '\(bad)' is not below the palette size '\(entries)'.")
            }
            let n = UInt32(entries)
            status = samples.withUnsafeBytes { (px: UnsafeRawBufferPointer) -> Int32 in
                paletteBytes.withUnsafeBufferPointer { (pal: UnsafeBufferPointer<UInt8>) -> Int32 in
                    message.withUnsafeMutableBufferPointer { (msg: inout UnsafeMutableBufferPointer<CChar>) -> Int32 in
                        let pixels = px.baseAddress?.assumingMemoryBound(to: UInt8.self)
                        let plte: UnsafePointer<UInt8>? = n > 0 ? pal.baseAddress : nil
                        return mp_png_encode(pixels, w, h, ch, 8, plte, n, level, &out, &outLen, msg.baseAddress, msg.count)
                    }
                }
            }
        case .uint16(let samples):
            status = samples.withUnsafeBytes { (px: UnsafeRawBufferPointer) -> Int32 in
                message.withUnsafeMutableBufferPointer { (msg: inout UnsafeMutableBufferPointer<CChar>) -> Int32 in
                    let pixels = px.baseAddress?.assumingMemoryBound(to: UInt8.self)
                    return mp_png_encode(pixels, w, h, ch, 16, nil, 0, level, &out, &outLen, msg.baseAddress, msg.count)
                }
            }
        default:
            throw MedprepError(.unsupported,
                               "PNG stores unsigned 8- or 16-bit samples; the image is '\(image.voxels.type.rawValue)' (convert it first).")
        }
        guard Int(status) == MP_OK, let out else {
            throw shimError(status, message, path: nil, writing: true)
        }
        defer { mp_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: outLen))
    }

    /// Encodes and writes atomically (temporary file, fsync, rename).
    public static func write(_ image: MedicalImage, to path: String, overwrite: Bool = true) throws {
        let bytes: [UInt8]
        do {
            bytes = try encode(image)
        } catch let error as MedprepError {
            throw error.at(path)
        }
        try FileIO.writeAtomically(bytes, to: path, overwrite: overwrite)
    }

    // MARK: - helpers

    private static func checkSignature(_ bytes: [UInt8], path: String) throws {
        if bytes.starts(with: signature) { return }
        if bytes.isEmpty {
            throw MedprepError(.truncated, path: path, "the PNG file is empty ('0' bytes).")
        }
        if bytes.count < signature.count && signature.starts(with: bytes) {
            throw MedprepError(.truncated, path: path,
                               "the PNG file is only '\(bytes.count)' bytes, shorter than the 8-byte signature.")
        }
        throw MedprepError(.badMagic, path: path,
                           "not a PNG file: it starts with '\(Image2DSupport.hexBytes(bytes.prefix(8)))', expected '\(Image2DSupport.hexBytes(signature))'.")
    }

    private static func shimError(_ status: Int32, _ message: [CChar], path: String?, writing: Bool = false)
        -> MedprepError
    {
        let text = Image2DSupport.cMessage(message)
        let verb = writing ? "PNG encoding failed" : "PNG decoding failed"
        switch Int(status) {
        case MP_ERR_TRUNCATED: return MedprepError(.truncated, path: path, "the PNG file is truncated: \(text).")
        case MP_ERR_TOO_LARGE: return MedprepError(.tooLarge, path: path, "the PNG image is too large: \(text).")
        case MP_ERR_NOMEM: return MedprepError(.tooLarge, path: path, "\(verb): \(text).")
        case MP_ERR_UNSUPPORTED: return MedprepError(.unsupported, path: path, "\(verb): \(text).")
        default:
            return writing ? MedprepError(.ioFailure, path: path, "\(verb): \(text).")
                : MedprepError(.corruptImage, path: path, "the PNG data is corrupt: \(text).")
        }
    }
}
