import MedprepCore

/// numpy's `np.percentile(a, q)` with the default `method='linear'`, in double precision and with
/// numpy's own arithmetic so results match it bit for bit:
/// virtual index `v = (n - 1) * q` with `q = percent / 100` (Hyndman & Fan method 7),
/// `i = floor(v)`, `g = v - i`; `a[i] + (a[i+1] - a[i]) * g`, or `a[i+1] - (a[i+1] - a[i]) * (1 - g)`
/// when `g >= 0.5` (numpy's `_lerp`); `v` beyond the ends takes the end value.
public enum Percentile {
    /// `q` in percent (0...100) of `sorted` (ascending, non-empty, finite).
    public static func linear(sorted a: UnsafeBufferPointer<Double>, _ q: Double) -> Double {
        let n = a.count
        precondition(n > 0, "percentile of an empty array")
        let frac = q / 100
        let v = Double(n - 1) * frac
        if v >= Double(n - 1) { return a[n - 1] }
        if v < 0 { return a[0] }
        let f = v.rounded(.down)
        let i = Int(f)
        let g = v - f
        let lo = a[i], hi = a[i + 1]
        let diff = hi - lo
        return g >= 0.5 ? hi - diff * (1 - g) : lo + diff * g
    }

    /// Percentiles `qs` (percent) of the finite values in `values`; NaN for an empty input.
    public static func linear(_ values: [Double], _ qs: [Double]) -> [Double] {
        var s = values.filter { $0.isFinite }
        guard !s.isEmpty else { return qs.map { _ in .nan } }
        s.sort()
        return s.withUnsafeBufferPointer { b in qs.map { linear(sorted: b, $0) } }
    }
}
