import CMedprep
import MedprepCore

/// gzip through the C shim: libdeflate for whole buffers (2.5-3.5x zlib), zlib for bounded prefixes.
enum Gzip {
    /// gzip streams start with 1f 8b.
    static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b }

    /// Largest expansion deflate can achieve (about 1032:1) plus slack for headers: a bound on
    /// what a compressed file can honestly hold, checked before allocating for a header's claim.
    static func maxExpansion(ofCompressed n: Int) -> Int { n.multipliedReportingOverflow(by: 1032).overflow ? Int.max : n * 1032 + 65536 }

    /// Up to `count` bytes from the start of the stream (fewer if it ends first). With `verify`,
    /// the rest of the stream is inflated too (and dropped) so its CRC-32 trailers are checked.
    static func prefix(_ input: [UInt8], count: Int, path: String, verify: Bool = false) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                verify ? mp_gzip_prefix_verified(inp.baseAddress, inp.count, o.baseAddress, count, &got, &err, err.count)
                       : mp_gzip_prefix(inp.baseAddress, inp.count, o.baseAddress, count, &got, &err, err.count)
            }
        }
        // A stream that ends early yields what it has, unless it is being verified to its end.
        if rc != Int32(MP_OK) && !(rc == Int32(MP_ERR_TRUNCATED) && got > 0 && !verify) {
            throw MedprepError(rc == Int32(MP_ERR_TRUNCATED) ? .truncated : .corruptCompression, path: path,
                               "cannot decompress gzip data: \(cMessage(err)).")
        }
        if got < count { out.removeSubrange(got...) }
        return out
    }

    /// Decompresses exactly `expected` bytes (or fewer if the stream is shorter; the caller checks).
    /// Streams holding more than `expected` bytes keep only `expected`, after every member's CRC
    /// has been checked.
    static func decompress(_ input: [UInt8], expected: Int, path: String) throws -> [UInt8] {
        var out = HugePages.array(count: expected) { (b: UnsafeMutableBufferPointer<UInt8>) in
            b.initialize(repeating: 0)  // libdeflate may stop early on bad data
        }
        var produced = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                mp_gzip_whole(inp.baseAddress, inp.count, o.baseAddress, expected, &produced, &err, err.count)
            }
        }
        if rc == Int32(MP_ERR_TOO_LARGE) {
            // More data than the header describes (trailing bytes, or corruption that inflates to
            // more): keep only what is needed, but inflate to the end so every CRC is checked.
            return try prefix(input, count: expected, path: path, verify: true)
        }
        if rc == Int32(MP_ERR_CORRUPT) {
            // libdeflate cannot tell truncation from corruption; zlib streaming can, and names a
            // failed CRC.
            let partial = try prefix(input, count: expected, path: path)
            if partial.count == expected { _ = try prefix(input, count: expected, path: path, verify: true) }
            if partial.count < expected {
                throw MedprepError(.truncated, path: path,
                                   "gzip data ends after \(partial.count) bytes but \(expected) are needed (truncated file).")
            }
            throw MedprepError(.corruptCompression, path: path, "cannot decompress gzip data: \(cMessage(err)).")
        }
        guard rc == Int32(MP_OK) else {
            throw MedprepError(.corruptCompression, path: path, "cannot decompress gzip data: \(cMessage(err)).")
        }
        if produced < expected { out.removeSubrange(produced...) }
        return out
    }

    static func compress(_ input: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var outPtr: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        let rc = input.withUnsafeBufferPointer { mp_gzip_compress($0.baseAddress, $0.count, level, &outPtr, &outLen) }
        guard rc == Int32(MP_OK), let outPtr else { throw MedprepError(.ioFailure, "gzip compression failed (out of memory).") }
        defer { mp_free(outPtr) }
        return Array(UnsafeBufferPointer(start: outPtr, count: outLen))
    }
}
