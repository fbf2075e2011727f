import MedprepCore

/// Reads `.nii`, `.nii.gz`, `.hdr`/`.img` pairs (each optionally gzipped), NIfTI-1 and -2,
/// either byte order. Header sanity is checked before any voxel buffer is allocated.
public enum NIfTIReader {
    /// True when the path names a NIfTI file by its extension.
    public static func handles(_ path: String) -> Bool {
        let p = path.lowercased()
        return [".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"].contains { p.hasSuffix($0) }
    }

    public static func read(path: String) throws -> MedicalImage {
        let (header, layout, dataFile, dataBytes) = try load(path: path)
        let voxels = try dataBytes.withUnsafeBytes { raw -> VoxelBuffer in
            let needed = layout.dataOffset + layout.dataBytes
            guard raw.count >= needed else {
                throw MedprepError(.truncated, path: dataFile,
                                   "file holds \(max(0, raw.count - layout.dataOffset)) bytes of voxel data after vox_offset \(layout.dataOffset), but the header needs \(layout.dataBytes) (truncated file?).")
            }
            let slice = UnsafeRawBufferPointer(rebasing: raw[layout.dataOffset..<needed])
            return decodeVoxels(slice, type: layout.voxelType, swap: header.bigEndian)
        }
        let format: ImageFormat = switch (header.version, header.singleFile) {
        case (.nifti1, true): .nifti1
        case (.nifti2, true): .nifti2
        case (.nifti1, false): .analyzePair
        case (.nifti2, false): .nifti2Pair
        }
        return MedicalImage(format: format, dims: layout.dims, spacing: layout.spacing, channels: layout.datatype.channels,
                            affine: layout.affine, affineSource: layout.affineSource,
                            scaling: layout.datatype.channels == 1 ? layout.scaling : nil,
                            voxels: voxels, sourceDatatype: layout.datatype.name)
    }

    /// Header only (reads and, for gzip, inflates just the first bytes).
    public static func readHeader(path: String) throws -> (NIfTIHeader, NIfTILayout) {
        let headerPath = try pairPaths(path).header
        var bytes = try FileIO.readAll(headerPath)
        if Gzip.isGzip(bytes) { bytes = try Gzip.prefix(bytes, count: NIfTIHeader.nifti2Size, path: headerPath) }
        let h = try NIfTIHeader.parse(bytes, path: headerPath)
        return (h, try NIfTILayout(header: h, path: headerPath))
    }

    /// Header, layout, and the bytes holding the voxels (whole .nii, or the .img).
    static func load(path: String) throws -> (NIfTIHeader, NIfTILayout, String, [UInt8]) {
        let paths = try pairPaths(path)
        let raw = try FileIO.readAll(paths.header)
        let gz = Gzip.isGzip(raw)
        let headBytes = gz ? try Gzip.prefix(raw, count: NIfTIHeader.nifti2Size, path: paths.header) : raw
        let header = try NIfTIHeader.parse(headBytes, path: paths.header)
        let layout = try NIfTILayout(header: header, path: paths.header)

        if header.singleFile {
            guard paths.image == nil else {
                throw MedprepError(.badMagic, path: paths.header, "header magic says single-file NIfTI but the file is named as a .hdr/.img pair.")
            }
            let needed = layout.dataOffset + layout.dataBytes
            return (header, layout, paths.header, try payload(raw, gz: gz, needed: needed, path: paths.header))
        }
        guard let imagePath = paths.image else {
            throw MedprepError(.badMagic, path: paths.header, "header magic says .hdr/.img pair ('ni\(header.version.rawValue)') but the file is a single .nii.")
        }
        let imgRaw = try FileIO.readAll(imagePath)
        let needed = layout.dataOffset + layout.dataBytes
        return (header, layout, imagePath, try payload(imgRaw, gz: Gzip.isGzip(imgRaw), needed: needed, path: imagePath))
    }

    /// Plain bytes, or the first `needed` bytes of a gzip after checking the claim is plausible.
    static func payload(_ raw: [UInt8], gz: Bool, needed: Int, path: String) throws -> [UInt8] {
        guard gz else { return raw }
        guard needed <= Gzip.maxExpansion(ofCompressed: raw.count) else {
            throw MedprepError(.tooLarge, path: path,
                               "the header needs \(needed) bytes but a \(raw.count)-byte gzip file cannot expand to that (corrupt or hostile header).")
        }
        return try Gzip.decompress(raw, expected: needed, path: path)
    }

    /// For `x.hdr[.gz]` or `x.img[.gz]`: both names (the image file found on disk, gz or not).
    static func pairPaths(_ path: String) throws -> (header: String, image: String?) {
        let lower = path.lowercased()
        for (ext, other) in [(".hdr", ".img"), (".img", ".hdr")] {
            for gzExt in ["", ".gz"] where lower.hasSuffix(ext + gzExt) {
                let stem = String(path.dropLast(ext.count + gzExt.count))
                let candidates = [stem + other + gzExt, stem + other, stem + other + ".gz",
                                  stem + other.uppercased() + gzExt]
                let found = candidates.first(where: FileIO.exists)
                if ext == ".hdr" {
                    guard let img = found else {
                        throw MedprepError(.fileNotFound, path: path, "the image file '\(stem + other + gzExt)' of this .hdr/.img pair is missing.")
                    }
                    return (path, img)
                } else {
                    guard let hdr = found else {
                        throw MedprepError(.fileNotFound, path: path, "the header file '\(stem + other + gzExt)' of this .hdr/.img pair is missing.")
                    }
                    return (hdr, path)
                }
            }
        }
        return (path, nil)
    }

    /// Copies (and byte-swaps) raw voxel bytes into a typed buffer.
    static func decodeVoxels(_ src: UnsafeRawBufferPointer, type: VoxelType, swap: Bool) -> VoxelBuffer {
        /// `T` stored, `B` the same-width integer used to swap bytes.
        func typed<T, B: FixedWidthInteger>(_: T.Type, _: B.Type) -> [T] {
            let n = src.count / MemoryLayout<T>.size
            return [T](unsafeUninitializedCapacity: n) { buf, initialized in
                let dst = UnsafeMutableRawBufferPointer(buf)
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<(n * MemoryLayout<T>.size)]))
                if swap && MemoryLayout<B>.size > 1 {
                    dst.withMemoryRebound(to: B.self) { b in for i in 0..<n { b[i] = b[i].byteSwapped } }
                }
                initialized = n
            }
        }
        switch type {
        case .uint8: return .uint8(typed(UInt8.self, UInt8.self))
        case .int8: return .int8(typed(Int8.self, UInt8.self))
        case .int16: return .int16(typed(Int16.self, UInt16.self))
        case .uint16: return .uint16(typed(UInt16.self, UInt16.self))
        case .int32: return .int32(typed(Int32.self, UInt32.self))
        case .uint32: return .uint32(typed(UInt32.self, UInt32.self))
        case .int64: return .int64(typed(Int64.self, UInt64.self))
        case .uint64: return .uint64(typed(UInt64.self, UInt64.self))
        case .float32: return .float32(typed(Float.self, UInt32.self))
        case .float64: return .float64(typed(Double.self, UInt64.self))
        }
    }
}
