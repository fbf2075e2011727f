import MedprepCore

/// Reads `.nii`, `.nii.gz`, `.hdr`/`.img` pairs (each optionally gzipped), NIfTI-1 and -2,
/// either byte order. Header sanity is checked before any voxel buffer is allocated.
public enum NIfTIReader {
    /// True when the path names a NIfTI file by its extension.
    public static func handles(_ path: String) -> Bool {
        let p = path.lowercased()
        return [".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"].contains { p.hasSuffix($0) }
    }

    /// How voxels are delivered: as stored, or converted to scaled float32 while reading
    /// (one pass over the data, no stored-type copy: what training pipelines want).
    public enum Delivery: Sendable { case stored, scaledFloat32 }

    public static func read(path: String, as delivery: Delivery = .stored) throws -> MedicalImage {
        let paths = try pairPaths(path)
        let headerFile = try FileIO.ReadHandle(paths.header)
        var head = try headerFile.read(count: NIfTIHeader.nifti2Size, at: 0)
        var gzipped: [UInt8]? = nil
        if Gzip.isGzip(head) {
            gzipped = try headerFile.read(count: headerFile.size, at: 0)
            head = try Gzip.prefix(gzipped!, count: NIfTIHeader.nifti2Size, path: paths.header)
        }
        let header = try NIfTIHeader.parse(head, path: paths.header)
        let layout = try NIfTILayout(header: header, path: paths.header)
        if header.singleFile && paths.image != nil {
            throw MedprepError(.badMagic, path: paths.header, "header magic says single-file NIfTI but the file is named as a .hdr/.img pair.")
        }
        if !header.singleFile && paths.image == nil {
            throw MedprepError(.badMagic, path: paths.header, "header magic says .hdr/.img pair ('ni\(header.version.rawValue)') but the file is a single .nii.")
        }

        // Where the voxel bytes are: the same file, or the .img of a pair; gzipped or not.
        var dataFile = headerFile
        if !header.singleFile {
            dataFile = try FileIO.ReadHandle(paths.image!)
            gzipped = Gzip.isGzip(try dataFile.read(count: 2, at: 0)) ? try dataFile.read(count: dataFile.size, at: 0) : nil
        }
        let convert = delivery == .scaledFloat32 && layout.datatype.channels == 1
        let voxels: VoxelBuffer
        if let gz = gzipped {
            let bytes = try payload(gz, needed: layout.dataOffset + layout.dataBytes, path: dataFile.path)
            voxels = convert ? try floatsFromMemory(bytes, layout: layout, header: header, path: dataFile.path)
                : try fromMemory(bytes, layout: layout, header: header, path: dataFile.path)
        } else {
            voxels = convert ? try floatsFromFile(dataFile, layout: layout, header: header)
                : try fromFile(dataFile, layout: layout, header: header)
        }
        let format: ImageFormat = switch (header.version, header.singleFile) {
        case (.nifti1, true): .nifti1
        case (.nifti2, true): .nifti2
        case (.nifti1, false): .analyzePair
        case (.nifti2, false): .nifti2Pair
        }
        return MedicalImage(format: format, dims: layout.dims, spacing: layout.spacing, channels: layout.datatype.channels,
                            affine: layout.affine, affineSource: layout.affineSource,
                            scaling: layout.datatype.channels == 1 && !convert ? layout.scaling : nil,
                            voxels: voxels, sourceDatatype: layout.datatype.name)
    }

    /// Header only (reads and, for gzip, inflates just the first bytes).
    public static func readHeader(path: String) throws -> (NIfTIHeader, NIfTILayout) {
        let headerPath = try pairPaths(path).header
        // The header is the first 348 or 540 bytes; a gzip file's first 64 KiB nearly always
        // inflates to that many (validation reads every header, so not reading whole volumes matters).
        let file = try FileIO.ReadHandle(headerPath)
        var bytes = try file.read(count: min(file.size, 1 << 16), at: 0)
        if Gzip.isGzip(bytes) {
            let whole = bytes.count == file.size
            if let b = try? Gzip.prefix(bytes, count: NIfTIHeader.nifti2Size, path: headerPath),
               b.count == NIfTIHeader.nifti2Size || whole {
                bytes = b
            } else {
                bytes = try Gzip.prefix(whole ? bytes : try FileIO.readAll(headerPath), count: NIfTIHeader.nifti2Size, path: headerPath)
            }
        }
        let h = try NIfTIHeader.parse(bytes, path: headerPath)
        return (h, try NIfTILayout(header: h, path: headerPath))
    }

    static func truncated(_ path: String, have: Int, layout: NIfTILayout) -> MedprepError {
        MedprepError(.truncated, path: path,
                     "file holds \(max(0, have - layout.dataOffset)) bytes of voxel data after vox_offset \(layout.dataOffset), but the header needs \(layout.dataBytes) (truncated file?).")
    }

    /// Uncompressed data: read straight into the typed buffer (no intermediate copy).
    static func fromFile(_ file: FileIO.ReadHandle, layout: NIfTILayout, header: NIfTIHeader) throws -> VoxelBuffer {
        guard file.size >= layout.dataOffset + layout.dataBytes else { throw truncated(file.path, have: file.size, layout: layout) }
        return try decodeVoxels(byteCount: layout.dataBytes, type: layout.voxelType, swap: header.bigEndian) { dst in
            let n = try file.read(into: dst, at: layout.dataOffset)
            if n < dst.count { throw truncated(file.path, have: layout.dataOffset + n, layout: layout) }
        }
    }

    /// Chunk size for fused read + convert: small enough to stay in L2.
    static let chunkBytes = 1 << 18

    static func floatsFromFile(_ file: FileIO.ReadHandle, layout: NIfTILayout, header: NIfTIHeader) throws -> VoxelBuffer {
        guard file.size >= layout.dataOffset + layout.dataBytes else { throw truncated(file.path, have: file.size, layout: layout) }
        let width = layout.voxelType.byteWidth
        if !header.bigEndian && layout.dataOffset % width == 0 {
            // Host order and aligned: convert straight from the mapped page cache (no copy).
            return try file.withMappedBytes(offset: layout.dataOffset, count: layout.dataBytes) { src in
                let count = layout.dataBytes / width
                let floats: [Float] = HugePages.array(count: count) { out in
                    let job = UnsafeSendable((src, out))
                    let workers = max(1, min(defaultThreadCount, count / (1 << 20)))
                    parallelFor(workers, threads: workers) { w in
                        let (src, out) = job.value
                        let lo = count * w / workers, hi = count * (w + 1) / workers
                        VoxelConversion.hostRawToFloat(UnsafeRawBufferPointer(rebasing: src[(lo * width)..<(hi * width)]),
                                                       type: layout.voxelType,
                                                       into: UnsafeMutableBufferPointer(rebasing: out[lo..<hi]),
                                                       scaling: layout.scaling)
                    }
                }
                return .float32(floats)
            }
        }
        return try convertChunks(layout: layout, header: header) { scratch, byteOffset in
            let n = try file.read(into: scratch, at: layout.dataOffset + byteOffset)
            if n < scratch.count { throw truncated(file.path, have: layout.dataOffset + byteOffset + n, layout: layout) }
        }
    }

    static func floatsFromMemory(_ bytes: [UInt8], layout: NIfTILayout, header: NIfTIHeader, path: String) throws -> VoxelBuffer {
        guard bytes.count >= layout.dataOffset + layout.dataBytes else { throw truncated(path, have: bytes.count, layout: layout) }
        return try bytes.withUnsafeBytes { src in
            try convertChunks(layout: layout, header: header) { scratch, byteOffset in
                let start = layout.dataOffset + byteOffset
                scratch.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<(start + scratch.count)]))
            }
        }
    }

    /// Streams the stored bytes through aligned scratch chunks into a float32 buffer, chunks
    /// shared out over `threads` (each output element is written once, so the bytes never
    /// depend on the thread count).
    static func convertChunks(layout: NIfTILayout, header: NIfTIHeader, threads: Int = defaultThreadCount,
                              fill: (UnsafeMutableRawBufferPointer, Int) throws -> Void) throws -> VoxelBuffer {
        let width = layout.voxelType.byteWidth
        let count = layout.dataBytes / width
        let perChunk = chunkBytes / width
        let chunks = (count + perChunk - 1) / perChunk
        let workers = max(1, min(threads, chunks))
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: perChunk * width * workers, alignment: 64)
        defer { scratch.deallocate() }
        let failure = ErrorBox()
        let floats: [Float] = HugePages.array(count: count) { out in
            withoutActuallyEscaping(fill) { fill in
                let job = UnsafeSendable((out, scratch, fill))
                parallelFor(workers, threads: workers) { w in
                    let (out, scratch, fill) = job.value
                    let mine = UnsafeMutableRawBufferPointer(rebasing: scratch[(w * perChunk * width)..<((w + 1) * perChunk * width)])
                    for c in stride(from: w, to: chunks, by: workers) {
                        let start = c * perChunk, n = min(perChunk, count - start)
                        let chunk = UnsafeMutableRawBufferPointer(rebasing: mine[0..<(n * width)])
                        do { try fill(chunk, start * width) } catch { failure.set(error); return }
                        VoxelConversion.rawToFloat(chunk, type: layout.voxelType, swap: header.bigEndian,
                                                   into: UnsafeMutableBufferPointer(rebasing: out[start..<(start + n)]),
                                                   scaling: layout.scaling)
                    }
                }
            }
        }
        if let error = failure.error { throw error }
        return .float32(floats)
    }

    static func fromMemory(_ bytes: [UInt8], layout: NIfTILayout, header: NIfTIHeader, path: String) throws -> VoxelBuffer {
        guard bytes.count >= layout.dataOffset + layout.dataBytes else { throw truncated(path, have: bytes.count, layout: layout) }
        return try decodeVoxels(byteCount: layout.dataBytes, type: layout.voxelType, swap: header.bigEndian) { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[layout.dataOffset..<(layout.dataOffset + layout.dataBytes)]))
            }
        }
    }

    /// The first `needed` bytes of a gzip stream, after checking the header's claim is plausible
    /// for the compressed size (so a hostile header cannot make us allocate gigabytes).
    static func payload(_ raw: [UInt8], needed: Int, path: String) throws -> [UInt8] {
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

    /// Allocates a typed buffer of `byteCount` bytes, lets `fill` write the stored bytes into it,
    /// then byte-swaps in place when the file's order is not the host's.
    static func decodeVoxels(byteCount: Int, type: VoxelType, swap: Bool,
                             fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> VoxelBuffer {
        /// `T` stored, `B` the same-width integer used to swap bytes.
        func typed<T, B: FixedWidthInteger>(_: T.Type, _: B.Type) throws -> [T] {
            let n = byteCount / MemoryLayout<T>.size
            return try [T](unsafeUninitializedCapacity: n) { buf, initialized in
                let dst = UnsafeMutableRawBufferPointer(buf)
                HugePages.advise(dst)
                try fill(UnsafeMutableRawBufferPointer(rebasing: dst[0..<(n * MemoryLayout<T>.size)]))
                if swap && MemoryLayout<B>.size > 1 {
                    dst.withMemoryRebound(to: B.self) { b in for i in 0..<n { b[i] = b[i].byteSwapped } }
                }
                initialized = n
            }
        }
        switch type {
        case .uint8: return .uint8(try typed(UInt8.self, UInt8.self))
        case .int8: return .int8(try typed(Int8.self, UInt8.self))
        case .int16: return .int16(try typed(Int16.self, UInt16.self))
        case .uint16: return .uint16(try typed(UInt16.self, UInt16.self))
        case .int32: return .int32(try typed(Int32.self, UInt32.self))
        case .uint32: return .uint32(try typed(UInt32.self, UInt32.self))
        case .int64: return .int64(try typed(Int64.self, UInt64.self))
        case .uint64: return .uint64(try typed(UInt64.self, UInt64.self))
        case .float32: return .float32(try typed(Float.self, UInt32.self))
        case .float64: return .float64(try typed(Double.self, UInt64.self))
        }
    }
}
