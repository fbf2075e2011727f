import MedprepCore

/// Data movement (reorienting, slicing, cropping, padding) never looks at values, so it is written
/// once over machine words and run for any bitwise-copyable element: an element of `stride`
/// bytes is `units` words of the widest of 8/4/2/1 bytes that divides its stride. Kernels are
/// generic over the word type only, so each call site below is specialised to a concrete
/// `UInt64`/`UInt32`/`UInt16`/`UInt8` loop; a generic `T` would cost a witness call per element.
protocol WordKernel {
    /// `src` and `dst` hold `units` words per element.
    func run<U: FixedWidthInteger & Sendable>(_ src: UnsafeBufferPointer<U>, _ dst: UnsafeMutableBufferPointer<U>, units: Int)
}

enum Words {
    /// Runs `kernel` on `src` and a new array of `count` elements, returned uninitialised apart from
    /// what the kernel writes (kernels write every element).
    @inline(__always)
    static func map<T: BitwiseCopyable, K: WordKernel>(_ src: [T], count: Int, _ kernel: K) -> [T] {
        HugePages.array(count: count) { (dst: UnsafeMutableBufferPointer<T>) in
            src.withUnsafeBufferPointer { s in run(s, dst, kernel) }
        }
    }

    @inline(__always)
    static func run<T: BitwiseCopyable, K: WordKernel>(_ src: UnsafeBufferPointer<T>, _ dst: UnsafeMutableBufferPointer<T>, _ kernel: K) {
        let stride = MemoryLayout<T>.stride
        @inline(__always) func go<U: FixedWidthInteger & Sendable>(_: U.Type) {
            src.withMemoryRebound(to: U.self) { s in
                dst.withMemoryRebound(to: U.self) { d in kernel.run(s, d, units: stride / MemoryLayout<U>.size) }
            }
        }
        if stride % 8 == 0 { go(UInt64.self) }
        else if stride % 4 == 0 { go(UInt32.self) }
        else if stride % 2 == 0 { go(UInt16.self) }
        else { go(UInt8.self) }
    }
}

/// Copies a strided 3D view: output element `(o0, o1, o2)` (o0 fastest, `block` words each) comes
/// from input element `base + o0 * step0 + o1 * step1 + o2 * step2` (element offsets, may be
/// negative steps). Parallel over output rows; every element is written exactly once.
struct StridedCopyKernel: WordKernel {
    var outDims: [Int]          // 3
    var steps: [Int]            // 3, input element steps per output index
    var base: Int               // input element offset of output (0, 0, 0)
    var channels: Int           // elements per grid point
    var threads: Int
    /// When set, output rows whose input lies outside `inputRange` along any axis are filled
    /// (used by padding); nil: every output maps inside the input.
    var fill: FillSpec?

    struct FillSpec {
        /// Per output axis, the output index range that maps inside the input.
        var inside: [Range<Int>]
        var value: [UInt8]      // bytes of one grid point (`channels` elements)
    }

    // Callers are generic over the element type (unspecialised across modules), so the word loops
    // are specialised here explicitly; without this every word went through a value witness.
    @_specialize(where U == UInt64)
    @_specialize(where U == UInt32)
    @_specialize(where U == UInt16)
    @_specialize(where U == UInt8)
    func run<U: FixedWidthInteger & Sendable>(_ src: UnsafeBufferPointer<U>, _ dst: UnsafeMutableBufferPointer<U>, units: Int) {
        let e0 = outDims[0], e1 = outDims[1], e2 = outDims[2]
        let rows = e1 * e2
        guard rows > 0 && e0 > 0 else { return }
        let block = channels * units
        let s0 = steps[0] * block, s1 = steps[1] * block, s2 = steps[2] * block, b = base * block
        let fillWords: [U] = fill.map { f in
            f.value.withUnsafeBytes { raw in
                (0..<(raw.count / MemoryLayout<U>.size)).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<U>.size, as: U.self) }
            }
        } ?? []
        let inside = fill?.inside
        let sp = UnsafeSendable(src.baseAddress!), dp = UnsafeSendable(dst.baseAddress!)
        let fw = UnsafeSendable(fillWords)
        let rowsPerTask = max(1, 32768 / max(1, e0 * block))
        let tasks = (rows + rowsPerTask - 1) / rowsPerTask
        parallelFor(tasks, threads: threads) { t in
            let s = sp.value, d = dp.value
            let fillW = fw.value
            for r in (t * rowsPerTask)..<min(rows, (t + 1) * rowsPerTask) {
                let o1 = r % e1, o2 = r / e1
                let out = d + r * e0 * block
                var lo = 0, hi = e0
                if let inside {
                    if !inside[1].contains(o1) || !inside[2].contains(o2) { lo = 0; hi = 0 } else { lo = inside[0].lowerBound; hi = inside[0].upperBound }
                    // Fill the parts of the row outside the input.
                    if hi <= lo { lo = e0; hi = e0 }
                    if block == 1 {
                        out.update(repeating: fillW[0], count: lo)
                        (out + hi).update(repeating: fillW[0], count: e0 - hi)
                    } else {
                        for o0 in 0..<e0 where o0 < lo || o0 >= hi {
                            let q = out + o0 * block
                            for w in 0..<block { q[w] = fillW[w] }
                        }
                    }
                    if hi <= lo { continue }
                }
                let rowIn = b + o1 * s1 + o2 * s2
                if s0 == block {
                    // Contiguous in the input too (slicing, cropping, padding, unflipped axes).
                    (out + lo * block).update(from: s + rowIn + lo * s0, count: (hi - lo) * block)
                } else if block == 1 {
                    var p = rowIn + lo * s0
                    for o0 in lo..<hi { out[o0] = s[p]; p += s0 }
                } else {
                    var p = rowIn + lo * s0
                    for o0 in lo..<hi {
                        let q = out + o0 * block
                        for w in 0..<block { q[w] = s[p + w] }
                        p += s0
                    }
                }
            }
        }
    }
}
