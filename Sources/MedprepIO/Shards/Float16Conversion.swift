import MedprepCore

/// IEEE 754 binary16 conversions on bit patterns, portable (no `Float16` type needed).
///
/// `halfBits(_:)` rounds to nearest, ties to even, exactly as numpy's `astype(np.float16)`
/// for every finite and infinite input (pinned by a numpy oracle fixture): values at or above
/// 65520 in magnitude become ±inf, values at or below 2^-25 become ±0, subnormal halves are
/// produced with correct rounding. NaN keeps its sign and the top 10 payload bits, not quieted,
/// and a payload that would vanish becomes 1 (numpy's `npy_floatbits_to_halfbits`; hardware
/// F16C conversion would quiet it instead: NaN-ness never differs, payload bits may).
public enum Float16Conversion {
    @inlinable
    public static func halfBits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let a = bits & 0x7FFF_FFFF
        if a >= 0x7F80_0000 {  // inf or NaN
            if a == 0x7F80_0000 { return sign | 0x7C00 }
            let payload = UInt16(truncatingIfNeeded: (a >> 13) & 0x03FF)
            return sign | 0x7C00 | (payload == 0 ? 1 : payload)
        }
        if a >= 0x4780_0000 { return sign | 0x7C00 }  // |x| >= 65536: overflow
        if a >= 0x3880_0000 {  // |x| >= 2^-14: a normal half (or rounds up to inf)
            let m = a &- 0x3800_0000  // re-bias the exponent from 127 to 15
            let rounded = m &+ 0x0FFF &+ ((m >> 13) & 1)
            return sign | UInt16(truncatingIfNeeded: rounded >> 13)
        }
        if a <= 0x3300_0000 { return sign }  // |x| <= 2^-25: rounds to zero (2^-25 is a tie, to even)
        // Subnormal half: the unit is 2^-24; |x| = mant * 2^(exp - 150).
        let exp = a >> 23  // 102...112
        let mant = (a & 0x007F_FFFF) | 0x0080_0000
        let shift = 126 &- exp  // 14...24
        var q = mant >> shift
        let rem = mant & ((1 << shift) &- 1)
        let half: UInt32 = 1 << (shift &- 1)
        if rem > half || (rem == half && (q & 1) == 1) { q &+= 1 }
        return sign | UInt16(truncatingIfNeeded: q)  // q == 0x400 is the smallest normal: correct
    }

    /// The exact Float value of a half (every half is representable in Float).
    @inlinable
    public static func float(fromHalfBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x03FF)
        if exp == 0 {
            let v = Float(mant) * 0x1p-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// Converts a buffer (numpy `a.astype(np.float16)` as bit patterns).
    public static func halfBits(_ values: [Float]) -> [UInt16] {
        HugePages.array(count: values.count) { out in
            if let base = out.baseAddress { values.withUnsafeBufferPointer { halfBits($0, into: UnsafeMutableRawPointer(base)) } }
        }
    }

    /// Converts `values` into little-endian half bit patterns at `out` (2 bytes each, any alignment).
    public static func halfBits(_ values: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawPointer) {
        for i in 0..<values.count { out.storeBytes(of: halfBits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
    }

    public static func floats(fromHalfBits values: [UInt16]) -> [Float] {
        HugePages.array(count: values.count) { out in
            values.withUnsafeBufferPointer { src in
                for i in 0..<src.count { out[i] = float(fromHalfBits: src[i]) }
            }
        }
    }
}
