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
                        let v = vs.value, m = ms.value
                        var c = 0, s = 0.0, lo = Double.infinity, hi = -Double.infinity
                        for i in (b * block)..<Swift.min(n, (b + 1) * block) where m?[i] ?? true {
                            let x = Double(v[i])
                            guard x.isFinite else { continue }
                            c += 1; s += x
                            if x < lo { lo = x }
                            if x > hi { hi = x }
                        }
                        ps.value[b] = (c, s, lo, hi)
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
                        let v = vs.value, m = ms.value
                        var s = 0.0
                        for i in (b * block)..<Swift.min(n, (b + 1) * block) where m?[i] ?? true {
                            let x = Double(v[i])
                            guard x.isFinite else { continue }
                            let d = x - mean
                            s += d * d
                        }
                        ps.value[b] = s
                    }
                }
            }
        }
        let std = (sq.reduce(0, +) / Double(count)).squareRoot()
        return Moments(count: count, mean: mean, std: std,
                       min: parts.map(\.2).min() ?? .infinity, max: parts.map(\.3).max() ?? -.infinity)
    }
}

@inline(__always)
func withOptionalBuffer<T, R>(_ a: [T]?, _ body: (UnsafeBufferPointer<T>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0) } }
    return body(nil)
}
