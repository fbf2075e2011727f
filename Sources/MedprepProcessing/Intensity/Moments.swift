import MedprepCore

/// Mean and population standard deviation in double precision over the finite values of a float
/// array (optionally only where a mask is true). Sums run over fixed blocks of 65536 values that
/// are combined in order, so the result is the same for any thread count.
public struct Moments: Sendable, Equatable, Codable {
    /// Finite values counted.
    public var count: Int
    public var mean: Double
    /// Population standard deviation (numpy `std`, ddof 0).
    public var std: Double
    /// Smallest and largest counted value (+inf / -inf when none).
    public var min: Double
    public var max: Double

    static let block = 65536

    /// Two passes: the mean, then the sum of squared deviations from it (numerically safe for
    /// CT values around -1000 with small spread, unlike sum-of-squares).
    public static func of(_ values: [Float], mask: [Bool]? = nil, threads: Int = defaultThreadCount) throws -> Moments {
        if let mask, mask.count != values.count {
            throw MedprepError(.mismatch, "mask has \(mask.count) values but the image has \(values.count).")
        }
        let n = values.count
        let blocks = (n + block - 1) / block
        var parts = [(Int, Double, Double, Double)](repeating: (0, 0, .infinity, -.infinity), count: blocks)
        values.withUnsafeBufferPointer { v in
            withOptionalBuffer(mask) { (m: UnsafeBufferPointer<Bool>?) -> Void in
                parts.withUnsafeMutableBufferPointer { p in
                    let vs = UnsafeSendable(v), ms = UnsafeSendable(m), ps = UnsafeSendable(p)
                    parallelFor(blocks, threads: threads) { b in
                        ps.value[b] = firstPass(vs.value, ms.value, (b * block)..<Swift.min(n, (b + 1) * block))
                    }
                }
            }
        }
        let count = parts.reduce(0) { $0 + $1.0 }
        guard count > 0 else { return Moments(count: 0, mean: .nan, std: .nan, min: .infinity, max: -.infinity) }
        let mean = parts.reduce(0.0) { $0 + $1.1 } / Double(count)
        var sq = [Double](repeating: 0, count: blocks)
        values.withUnsafeBufferPointer { v in
            withOptionalBuffer(mask) { (m: UnsafeBufferPointer<Bool>?) -> Void in
                sq.withUnsafeMutableBufferPointer { p in
                    let vs = UnsafeSendable(v), ms = UnsafeSendable(m), ps = UnsafeSendable(p)
                    parallelFor(blocks, threads: threads) { b in
                        ps.value[b] = secondPass(vs.value, ms.value, (b * block)..<Swift.min(n, (b + 1) * block), mean: mean)
                    }
                }
            }
        }
        let std = (sq.reduce(0, +) / Double(count)).squareRoot()
        return Moments(count: count, mean: mean, std: std,
                       min: parts.map(\.2).min() ?? .infinity, max: parts.map(\.3).max() ?? -.infinity)
    }
}

extension Moments {
    /// Lanes of the block sums: value i goes to lane i % 4 (fixed, so sums do not depend on
    /// threads), and the lanes are added in order at the end.
    typealias Lanes = SIMD4<Double>

    /// Values of `v[i ..< i + 4]` counted (finite, and in the mask when there is one).
    @inline(__always)
    static func lanes(_ v: UnsafeBufferPointer<Float>, _ m: UnsafeBufferPointer<Bool>?, _ i: Int) -> (Lanes, SIMDMask<SIMD4<Int64>>) {
        let x = Lanes(Double(v[i]), Double(v[i + 1]), Double(v[i + 2]), Double(v[i + 3]))
        var keep = (x - x) .== 0  // false for ±inf and NaN
        if let m { keep = keep .& SIMDMask<SIMD4<Int64>>(arrayLiteral: m[i], m[i + 1], m[i + 2], m[i + 3]) }
        return (x, keep)
    }

    /// Count, sum, min and max of the counted values in `range`.
    static func firstPass(_ v: UnsafeBufferPointer<Float>, _ m: UnsafeBufferPointer<Bool>?,
                          _ range: Range<Int>) -> (Int, Double, Double, Double) {
        var count = SIMD4<Int64>(repeating: 0), sum = Lanes(repeating: 0)
        var lo = Lanes(repeating: .infinity), hi = Lanes(repeating: -.infinity)
        var i = range.lowerBound
        while i + 4 <= range.upperBound {
            let (x, keep) = lanes(v, m, i)
            count &+= SIMD4<Int64>(repeating: 0).replacing(with: 1, where: keep)
            sum += Lanes(repeating: 0).replacing(with: x, where: keep)
            lo = lo.replacing(with: x, where: keep .& (x .< lo))
            hi = hi.replacing(with: x, where: keep .& (x .> hi))
            i += 4
        }
        var c = Int(count.wrappedSum()), s = sum[0] + sum[1] + sum[2] + sum[3]
        var l = lo.min(), h = hi.max()
        while i < range.upperBound {
            let x = Double(v[i])
            if (m?[i] ?? true) && x.isFinite {
                c += 1; s += x
                l = Swift.min(l, x); h = Swift.max(h, x)
            }
            i += 1
        }
        return (c, s, l, h)
    }

    /// Sum of squared deviations from `mean` of the counted values in `range`.
    static func secondPass(_ v: UnsafeBufferPointer<Float>, _ m: UnsafeBufferPointer<Bool>?,
                           _ range: Range<Int>, mean: Double) -> Double {
        var sum = Lanes(repeating: 0)
        var i = range.lowerBound
        while i + 4 <= range.upperBound {
            let (x, keep) = lanes(v, m, i)
            let d = x - mean
            sum += Lanes(repeating: 0).replacing(with: d * d, where: keep)
            i += 4
        }
        var s = sum[0] + sum[1] + sum[2] + sum[3]
        while i < range.upperBound {
            let x = Double(v[i])
            if (m?[i] ?? true) && x.isFinite { s += (x - mean) * (x - mean) }
            i += 1
        }
        return s
    }
}

@inline(__always)
func withOptionalBuffer<T, R>(_ a: [T]?, _ body: (UnsafeBufferPointer<T>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0) } }
    return body(nil)
}
