import MedprepCore
import MedprepDataset

/// Per-image measurements taken while the voxels are in memory: non-finite values, intensity
/// statistics (`Moments`, as info and convert) and a content hash.
package enum ImageChecks {
    package struct NonFinite { var nan = 0, posInf = 0, negInf = 0, first = -1, marks: [Int32] = [] }

    /// NaN and ±Inf among the stored values (only floating-point types can hold them).
    package static func nonFinite(_ image: MedicalImage, markCap: Int = 1 << 16) -> NonFinite {
        var r = NonFinite()
        let ch = max(1, image.channels)
        func scan<T: BinaryFloatingPoint>(_ a: [T]) {
            a.withUnsafeBufferPointer { buf in
                for i in 0..<buf.count where !buf[i].isFinite {
                    if buf[i].isNaN { r.nan += 1 } else if buf[i] > 0 { r.posInf += 1 } else { r.negInf += 1 }
                    let vox = (i / ch) % max(1, image.spatialDims.reduce(1, *))
                    if r.first < 0 { r.first = vox }
                    if r.marks.count < markCap { r.marks.append(Int32(vox)) }
                }
            }
        }
        switch image.voxels {
        case .float32(let a): scan(a)
        case .float64(let a): scan(a)
        default: break
        }
        return r
    }

    /// 128-bit content hash of the stored voxels, their type and grid (two multiply-rotate lanes
    /// over 64-bit words, then a SplitMix finaliser). Equal hashes mean identical content for
    /// any practical purpose; it is not a cryptographic hash.
    package static func contentHash(_ image: MedicalImage) -> String {
        var h1: UInt64 = 0x243F_6A88_85A3_08D3, h2: UInt64 = 0x1319_8A2E_0370_7344
        func mix(_ w: UInt64) {
            h1 = (h1 ^ w) &* 0x9E37_79B9_7F4A_7C15
            h1 = (h1 << 29) | (h1 >> 35)
            h2 = (h2 &+ w) &* 0xC2B2_AE3D_27D4_EB4F
            h2 ^= h2 >> 31
        }
        for d in image.dims { mix(UInt64(d)) }
        mix(UInt64(image.channels))
        for (i, ch) in image.voxels.type.rawValue.utf8.enumerated() { mix(UInt64(ch) << UInt64(8 * (i % 8))) }
        image.voxels.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { mix(raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            var tail: UInt64 = 0
            for (k, i) in ((words * 8)..<raw.count).enumerated() { tail |= UInt64(raw[i]) << UInt64(8 * k) }
            mix(tail ^ UInt64(raw.count))
        }
        func fin(_ x: UInt64) -> UInt64 {
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(fin(h1 ^ h2 &* 3)) + hex(fin(h2 ^ (h1 << 1)))
    }
}
