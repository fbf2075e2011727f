import MedprepCore

/// Per-image measurements taken while the voxels are in memory: non-finite values, intensity
/// statistics and a content hash.
enum ImageChecks {
    struct NonFinite { var nan = 0, posInf = 0, negInf = 0, first = -1, marks: [Int32] = [] }

    /// NaN and ±Inf among the stored values (only floating-point types can hold them).
    static func nonFinite(_ image: MedicalImage, markCap: Int = 1 << 16) -> NonFinite {
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

    /// Mean, standard deviation (population), min and max of an image's scaled finite values,
    /// all channels together. One typed pass, sums of values shifted by the first one (so the
    /// variance keeps its precision far from zero).
    struct Stats: Sendable, Equatable {
        var count = 0
        var mean = Double.nan, std = Double.nan, min = Double.nan, max = Double.nan
    }

    static func stats(_ image: MedicalImage) -> Stats {
        var n = 0, s1 = 0.0, s2 = 0.0, lo = Double.infinity, hi = -Double.infinity, shift = 0.0
        func run<T>(_ a: [T], _ conv: (T) -> Double) {
            a.withUnsafeBufferPointer { buf in
                var first = true
                for i in 0..<buf.count {
                    let v = conv(buf[i])
                    guard v.isFinite else { continue }
                    if first { shift = v; first = false }
                    let d = v - shift
                    n += 1; s1 += d; s2 += d * d
                    if v < lo { lo = v }
                    if v > hi { hi = v }
                }
            }
        }
        /// 8- and 16-bit integers: exact Int64 sums (no overflow below 2^32 voxels), then Double.
        func small<T: FixedWidthInteger>(_ a: [T]) {
            guard !a.isEmpty else { return }
            var t1: Int64 = 0, t2: Int64 = 0, mn = T.max, mx = T.min
            a.withUnsafeBufferPointer { buf in
                for x in buf {
                    let w = Int64(x)
                    t1 &+= w; t2 &+= w * w
                    mn = Swift.min(mn, x); mx = Swift.max(mx, x)
                }
            }
            // Exact integer moments; the variance (n*t2 - t1^2) / n^2 is formed in Double once.
            // Expressed in run()'s terms: shift 0, s1 = t1, and s2 chosen so s2/n - (s1/n)^2 is it.
            n = a.count
            let m = Double(t1) / Double(n)
            let variance = Swift.max(0, Double(n) * Double(t2) - Double(t1) * Double(t1)) / (Double(n) * Double(n))
            shift = 0
            s1 = Double(t1)
            s2 = (variance + m * m) * Double(n)
            lo = Double(mn); hi = Double(mx)
        }
        switch image.voxels {
        case .uint8(let a): small(a)
        case .int8(let a): small(a)
        case .int16(let a): small(a)
        case .uint16(let a): small(a)
        case .int32(let a): run(a) { Double($0) }
        case .uint32(let a): run(a) { Double($0) }
        case .int64(let a): run(a) { Double($0) }
        case .uint64(let a): run(a) { Double($0) }
        case .float32(let a): run(a) { Double($0) }
        case .float64(let a): run(a) { $0 }
        }
        guard n > 0 else { return Stats() }
        let m = s1 / Double(n)
        var out = Stats(count: n, mean: shift + m, std: Swift.max(0, s2 / Double(n) - m * m).squareRoot(), min: lo, max: hi)
        if let sc = image.scaling {
            out.mean = out.mean * sc.slope + sc.intercept
            out.std *= abs(sc.slope)
            let a = lo * sc.slope + sc.intercept, b = hi * sc.slope + sc.intercept
            out.min = Swift.min(a, b); out.max = Swift.max(a, b)
        }
        return out
    }

    /// 128-bit content hash of the stored voxels, their type and grid (two multiply-rotate lanes
    /// over 64-bit words, then a SplitMix finaliser). Equal hashes mean identical content for
    /// any practical purpose; it is not a cryptographic hash.
    static func contentHash(_ image: MedicalImage) -> String {
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
