/// Running min/max/mean/std in double precision (Welford with chunk merging, so
/// the result does not depend on how values are split across threads).
public struct RunningStats: Sendable, Equatable, Codable {
    public private(set) var count: Int = 0
    public private(set) var min: Double = .infinity
    public private(set) var max: Double = -.infinity
    public private(set) var mean: Double = 0
    private var m2: Double = 0
    /// Non-finite values are counted here and kept out of the moments.
    public private(set) var nonFinite: Int = 0

    public init() {}

    public mutating func add(_ v: Double) {
        guard v.isFinite else { nonFinite += 1; return }
        count += 1
        if v < min { min = v }
        if v > max { max = v }
        let d = v - mean
        mean += d / Double(count)
        m2 += d * (v - mean)
    }

    /// Exact sum-based accumulation for a buffer, then merged (faster than per-value Welford).
    public mutating func add(_ buf: UnsafeBufferPointer<Double>) {
        var n = 0, s = 0.0, lo = Double.infinity, hi = -Double.infinity
        for v in buf where v.isFinite {
            n += 1; s += v
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        nonFinite += buf.count - n
        guard n > 0 else { return }
        let mu = s / Double(n)
        var ss = 0.0
        for v in buf where v.isFinite { let d = v - mu; ss += d * d }
        var other = RunningStats()
        other.count = n; other.min = lo; other.max = hi; other.mean = mu; other.m2 = ss
        merge(other)
    }

    /// Chan et al. parallel merge.
    public mutating func merge(_ o: RunningStats) {
        nonFinite += o.nonFinite
        guard o.count > 0 else { return }
        guard count > 0 else { let nf = nonFinite; self = o; nonFinite = nf; return }
        let n = count + o.count
        let d = o.mean - mean
        mean += d * Double(o.count) / Double(n)
        m2 += o.m2 + d * d * Double(count) * Double(o.count) / Double(n)
        count = n
        min = Swift.min(min, o.min)
        max = Swift.max(max, o.max)
    }

    /// Population standard deviation (numpy's default ddof=0).
    public var std: Double { count > 0 ? (m2 / Double(count)).squareRoot() : .nan }

    /// Statistics of an image's scaled values (all frames, all channels).
    public static func of(_ image: MedicalImage) -> RunningStats {
        var stats = RunningStats()
        let s = image.scaling
        image.voxels.withDoubles { buf in
            if let s {
                var tmp = [Double](buf)
                for i in tmp.indices { tmp[i] = tmp[i] * s.slope + s.intercept }
                tmp.withUnsafeBufferPointer { stats.add($0) }
            } else {
                stats.add(buf)
            }
        }
        return stats
    }
}
