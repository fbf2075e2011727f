/// The stored element type of an image, independent of file format.
/// RGB images are `uint8` with `channels == 3` (NIfTI RGB24 included).
public enum VoxelType: String, Sendable, Codable, CaseIterable {
    case uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64

    public var byteWidth: Int {
        switch self {
        case .uint8, .int8: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64: 8
        }
    }

    public var isInteger: Bool { self != .float32 && self != .float64 }
}

/// Voxels in their stored type, native byte order, channel-interleaved, x fastest:
/// index = (((t * nz + z) * ny + y) * nx + x) * channels + c.
public enum VoxelBuffer: Sendable, Equatable {
    case uint8([UInt8]), int8([Int8]), int16([Int16]), uint16([UInt16])
    case int32([Int32]), uint32([UInt32]), int64([Int64]), uint64([UInt64])
    case float32([Float]), float64([Double])

    public var type: VoxelType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .int16: .int16
        case .uint16: .uint16
        case .int32: .int32
        case .uint32: .uint32
        case .int64: .int64
        case .uint64: .uint64
        case .float32: .float32
        case .float64: .float64
        }
    }

    public var count: Int {
        switch self {
        case .uint8(let a): a.count
        case .int8(let a): a.count
        case .int16(let a): a.count
        case .uint16(let a): a.count
        case .int32(let a): a.count
        case .uint32(let a): a.count
        case .int64(let a): a.count
        case .uint64(let a): a.count
        case .float32(let a): a.count
        case .float64(let a): a.count
        }
    }

    /// Calls `body` with every element converted to Double, in storage order.
    /// The switch is hoisted so the inner loop is monomorphic.
    @inlinable
    public func withDoubles(chunk: Int = 65536, _ body: (UnsafeBufferPointer<Double>) -> Void) {
        func run<T>(_ a: [T], _ conv: (T) -> Double) {
            var tmp = [Double](repeating: 0, count: Swift.min(chunk, a.count))
            a.withUnsafeBufferPointer { src in
                tmp.withUnsafeMutableBufferPointer { t in
                    var start = 0
                    while start < src.count {
                        let end = Swift.min(start + chunk, src.count)
                        for i in start..<end { t[i - start] = conv(src[i]) }
                        body(UnsafeBufferPointer(rebasing: t[0..<(end - start)]))
                        start = end
                    }
                }
            }
        }
        switch self {
        case .uint8(let a): run(a) { Double($0) }
        case .int8(let a): run(a) { Double($0) }
        case .int16(let a): run(a) { Double($0) }
        case .uint16(let a): run(a) { Double($0) }
        case .int32(let a): run(a) { Double($0) }
        case .uint32(let a): run(a) { Double($0) }
        case .int64(let a): run(a) { Double($0) }
        case .uint64(let a): run(a) { Double($0) }
        case .float32(let a): run(a) { Double($0) }
        case .float64(let a): run(a) { $0 }
        }
    }

    /// Sets `out[i] = f(element i as Double)` for the first `out.count` elements, calling `f` once
    /// per distinct value where that is cheap: through a lookup table for 8- and 16-bit integers,
    /// once per run of equal values for other types (masks are long runs; NaN is never reused).
    /// Turns a mask's stored values into codes without a Double and a decision per voxel.
    @inlinable
    public func mapDistinct<T>(into out: UnsafeMutableBufferPointer<T>, _ f: (Double) -> T) {
        precondition(out.count <= count, "mapDistinct: \(out.count) outputs for \(count) values")
        func viaTable<S: BinaryInteger>(_ a: [S], offset: Int, size: Int) {
            var table = [T?](repeating: nil, count: size)
            a.withUnsafeBufferPointer { src in
                table.withUnsafeMutableBufferPointer { lut in
                    for i in 0..<out.count {
                        let k = Int(src[i]) &+ offset
                        if let c = lut[k] { out[i] = c; continue }
                        let c = f(Double(src[i]))
                        lut[k] = c
                        out[i] = c
                    }
                }
            }
        }
        func viaRuns<S>(_ a: [S], _ conv: (S) -> Double) {
            a.withUnsafeBufferPointer { src in
                var last = Double.nan
                var lastCode: T? = nil
                for i in 0..<out.count {
                    let d = conv(src[i])
                    if d == last, let c = lastCode { out[i] = c; continue }
                    let c = f(d)
                    out[i] = c
                    last = d
                    lastCode = d.isNaN ? nil : c
                }
            }
        }
        switch self {
        case .uint8(let a): viaTable(a, offset: 0, size: 256)
        case .int8(let a): viaTable(a, offset: 128, size: 256)
        case .uint16(let a): viaTable(a, offset: 0, size: 65536)
        case .int16(let a): viaTable(a, offset: 32768, size: 65536)
        case .int32(let a): viaRuns(a) { Double($0) }
        case .uint32(let a): viaRuns(a) { Double($0) }
        case .int64(let a): viaRuns(a) { Double($0) }
        case .uint64(let a): viaRuns(a) { Double($0) }
        case .float32(let a): viaRuns(a) { Double($0) }
        case .float64(let a): viaRuns(a) { $0 }
        }
    }

    /// Element `i` as Double (slow path; for tests and small lookups).
    public func double(at i: Int) -> Double {
        switch self {
        case .uint8(let a): Double(a[i])
        case .int8(let a): Double(a[i])
        case .int16(let a): Double(a[i])
        case .uint16(let a): Double(a[i])
        case .int32(let a): Double(a[i])
        case .uint32(let a): Double(a[i])
        case .int64(let a): Double(a[i])
        case .uint64(let a): Double(a[i])
        case .float32(let a): Double(a[i])
        case .float64(let a): a[i]
        }
    }
}

extension VoxelBuffer {
    /// The stored bytes in native (little-endian on supported platforms) order.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .uint8(let a): try a.withUnsafeBytes(body)
        case .int8(let a): try a.withUnsafeBytes(body)
        case .int16(let a): try a.withUnsafeBytes(body)
        case .uint16(let a): try a.withUnsafeBytes(body)
        case .int32(let a): try a.withUnsafeBytes(body)
        case .uint32(let a): try a.withUnsafeBytes(body)
        case .int64(let a): try a.withUnsafeBytes(body)
        case .uint64(let a): try a.withUnsafeBytes(body)
        case .float32(let a): try a.withUnsafeBytes(body)
        case .float64(let a): try a.withUnsafeBytes(body)
        }
    }

    /// SHA-256 of the stored values (little-endian), the fixtures' `raw_sha256`.
    public var rawSHA256: String {
        var h = SHA256()
        withUnsafeBytes { h.update($0) }
        return h.finalizeHex()
    }
}

/// Occurrences of each value 0..<bins (every value must be below `bins`). Four interleaved
/// counters, summed at the end: masks and class keys repeat one value for long runs, and a
/// single counter then waits on its own previous increment at every element.
public func countOccurrences(_ values: UnsafeBufferPointer<UInt16>, bins: Int) -> [Int] {
    var lanes = [Int](repeating: 0, count: 4 * bins)
    lanes.withUnsafeMutableBufferPointer { h in
        let h = h.baseAddress!
        var i = 0
        while i + 4 <= values.count {
            h[Int(values[i])] &+= 1
            h[bins + Int(values[i + 1])] &+= 1
            h[2 * bins + Int(values[i + 2])] &+= 1
            h[3 * bins + Int(values[i + 3])] &+= 1
            i += 4
        }
        while i < values.count { h[Int(values[i])] &+= 1; i += 1 }
    }
    var out = [Int](repeating: 0, count: bins)
    for lane in 0..<4 {
        for v in 0..<bins { out[v] &+= lanes[lane * bins + v] }
    }
    return out
}
