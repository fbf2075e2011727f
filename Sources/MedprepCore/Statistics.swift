/// The one statistics type of medprep: count, mean, population standard deviation, min and max in
/// double precision over the finite values, and how many were not finite. `medprep info`,
/// validate's intensity checks and convert's normalisation all use it, so a case's numbers agree
/// between them. Two passes (the mean, then the squared deviations from it: numerically safe for
/// CT values around -1000 with a small spread); sums run over fixed blocks of 65536 values
/// combined in order, so the result is the same for any thread count.
public struct Moments: Sendable, Equatable, Codable {
    /// Finite values counted.
    public var count: Int
    public var mean: Double
    /// Population standard deviation (numpy `std`, ddof 0).
    public var std: Double
    /// Smallest and largest counted value (+inf / -inf when none).
    public var min: Double
    public var max: Double
    /// Values left out because they were NaN or infinite.
    public var nonFinite = 0

    public init(count: Int, mean: Double, std: Double, min: Double, max: Double, nonFinite: Int = 0) {
        self.count = count; self.mean = mean; self.std = std; self.min = min; self.max = max; self.nonFinite = nonFinite
    }

    static let block = 65536

    /// Over a float array, optionally only where `mask` is true.
    public static func of(_ values: [Float], mask: [Bool]? = nil, threads: Int = defaultThreadCount) throws -> Moments {
        if let mask, mask.count != values.count {
            throw MedprepError(.mismatch, "mask has \(mask.count) values but the image has \(values.count).")
        }
        return values.withUnsafeBufferPointer { v in
            withOptionalBuffer(mask) { m in twoPass(v, mask: m, threads: threads, scaling: nil) }
        }
    }

    /// Over an image's scaled values (scl_slope / scl_inter applied), every frame and channel.
    public static func of(_ image: MedicalImage, threads: Int = 1) -> Moments {
        func run<T: MomentsElement>(_ a: [T]) -> Moments {
            a.withUnsafeBufferPointer { twoPass($0, mask: nil, threads: threads, scaling: image.scaling) }
        }
        switch image.voxels {
        case .uint8(let a): return run(a)
        case .int8(let a): return run(a)
        case .int16(let a): return run(a)
        case .uint16(let a): return run(a)
        case .int32(let a): return run(a)
        case .uint32(let a): return run(a)
        case .int64(let a): return run(a)
        case .uint64(let a): return run(a)
        case .float32(let a): return run(a)
        case .float64(let a): return run(a)
        }
    }

    /// Generic over the element type, not a conversion closure: each type gets its own
    /// specialised loop (a closure call per voxel costs several times the arithmetic).
    static func twoPass<T: MomentsElement>(_ v: UnsafeBufferPointer<T>, mask m: UnsafeBufferPointer<Bool>?, threads: Int,
                                           scaling: IntensityScaling?) -> Moments {
        let n = v.count
        let scaled = scaling != nil, slope = scaling?.slope ?? 1, inter = scaling?.intercept ?? 0
        let blocks = (n + block - 1) / block
        var parts = [(Int, Double, Double, Double, Int)](repeating: (0, 0, .infinity, -.infinity, 0), count: blocks)
        parts.withUnsafeMutableBufferPointer { p in
            let vs = UnsafeSendable(v), ms = UnsafeSendable(m), ps = UnsafeSendable(p)
            parallelFor(blocks, threads: threads) { b in
                let v = vs.value, m = ms.value
                var k = 0, s = 0.0, lo = Double.infinity, hi = -Double.infinity, bad = 0
                for i in (b * block)..<Swift.min(n, (b + 1) * block) where m?[i] ?? true {
                    let x = scaled ? v[i].momentsValue * slope + inter : v[i].momentsValue
                    guard x.isFinite else { bad += 1; continue }
                    k += 1; s += x
                    if x < lo { lo = x }
                    if x > hi { hi = x }
                }
                ps.value[b] = (k, s, lo, hi, bad)
            }
        }
        let count = parts.reduce(0) { $0 + $1.0 }
        let nonFinite = parts.reduce(0) { $0 + $1.4 }
        guard count > 0 else { return Moments(count: 0, mean: .nan, std: .nan, min: .infinity, max: -.infinity, nonFinite: nonFinite) }
        let mean = parts.reduce(0.0) { $0 + $1.1 } / Double(count)
        var sq = [Double](repeating: 0, count: blocks)
        sq.withUnsafeMutableBufferPointer { p in
            let vs = UnsafeSendable(v), ms = UnsafeSendable(m), ps = UnsafeSendable(p)
            parallelFor(blocks, threads: threads) { b in
                let v = vs.value, m = ms.value
                var s = 0.0
                for i in (b * block)..<Swift.min(n, (b + 1) * block) where m?[i] ?? true {
                    let x = scaled ? v[i].momentsValue * slope + inter : v[i].momentsValue
                    guard x.isFinite else { continue }
                    let d = x - mean
                    s += d * d
                }
                ps.value[b] = s
            }
        }
        let std = (sq.reduce(0, +) / Double(count)).squareRoot()
        return Moments(count: count, mean: mean, std: std, min: parts.map(\.2).min() ?? .infinity,
                       max: parts.map(\.3).max() ?? -.infinity, nonFinite: nonFinite)
    }
}

/// A stored voxel type, as a Double (what `Moments` sums).
public protocol MomentsElement: Sendable { var momentsValue: Double { get } }
extension UInt8: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Int8: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Int16: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension UInt16: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Int32: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension UInt32: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Int64: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension UInt64: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Float: MomentsElement { @inline(__always) public var momentsValue: Double { Double(self) } }
extension Double: MomentsElement { @inline(__always) public var momentsValue: Double { self } }

@inline(__always)
public func withOptionalBuffer<T, R>(_ a: [T]?, _ body: (UnsafeBufferPointer<T>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0) } }
    return body(nil)
}
