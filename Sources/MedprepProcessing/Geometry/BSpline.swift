/// The cubic B-spline prefilter of scipy.ndimage for `mode='nearest'`: the line is first padded
/// with `pad` copies of its end samples (`np.pad(mode='edge')`, as scipy's
/// `_prepad_for_spline_filter`), then filtered in double precision with the 'reflect' boundary
/// initialisation scipy uses for 'nearest' (Unser et al. 1991; ni_splines.c). Interpolating the
/// coefficients with cubic B-spline weights reproduces the samples exactly at integer positions.
enum BSpline {
    static let pad = 12
    /// sqrt(3) - 2, the single pole of the cubic B-spline.
    static let pole = -0.267949192431122706472553658494127633
    static let gain: Double = (1.0 - pole) * (1.0 - 1.0 / pole)
    /// |pole|^k below this adds nothing a double can hold to a coefficient; the causal
    /// initialisation sum stops there instead of running the whole line (scipy runs it all).
    static let negligible = 1e-30

    /// Prefilters `c[0..<n]` in place (n > 1).
    static func filterLine(_ c: UnsafeMutablePointer<Double>, _ n: Int) {
        let z = pole
        for i in 0..<n { c[i] *= gain }
        // causal initialisation, 'reflect' (half-sample symmetric) extension
        let zn = pow(z, Double(n))
        let c0 = c[0]
        var acc = c[0] + zn * c[n - 1]
        var zi = z
        var i = 1
        while i < n && abs(zi) > negligible {
            acc += zi * (c[i] + zn * c[n - 1 - i])
            zi *= z
            i += 1
        }
        c[0] = acc * (z / (1 - zn * zn)) + c0
        for i in 1..<n { c[i] += z * c[i - 1] }
        c[n - 1] *= z / (z - 1)
        var k = n - 2
        while k >= 0 { c[k] = z * (c[k + 1] - c[k]); k -= 1 }
    }

    /// The same filter on `w` interleaved lines: element `(i, j)` at `c[i * w + j]`, line length
    /// `n` (rows are vectorised; each line gets exactly the arithmetic of `filterLine`).
    static func filterPanel(_ c: UnsafeMutablePointer<Double>, _ n: Int, _ w: Int, scratch: UnsafeMutablePointer<Double>) {
        let z = pole
        for i in 0..<(n * w) { c[i] *= gain }
        let zn = pow(z, Double(n))
        let last = c + (n - 1) * w
        for j in 0..<w { scratch[j] = c[j] + zn * last[j] }
        var zi = z
        var i = 1
        while i < n && abs(zi) > negligible {
            let a = c + i * w, b = c + (n - 1 - i) * w
            for j in 0..<w { scratch[j] += zi * (a[j] + zn * b[j]) }
            zi *= z
            i += 1
        }
        let k0 = z / (1 - zn * zn)
        for j in 0..<w { c[j] = scratch[j] * k0 + c[j] }
        for i in 1..<n {
            let row = c + i * w, prev = c + (i - 1) * w
            for j in 0..<w { row[j] += z * prev[j] }
        }
        let kEnd = z / (z - 1)
        for j in 0..<w { last[j] *= kEnd }
        var k = n - 2
        while k >= 0 {
            let row = c + k * w, next = c + (k + 1) * w
            for j in 0..<w { row[j] = z * (next[j] - row[j]) }
            k -= 1
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
