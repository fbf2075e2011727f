import MedprepCore
import MedprepProcessing

/// The checked Swift side of the C entry points (CABI.swift): arguments arrive as C gives them and
/// are validated here before any pointer is read.
enum MapsABI {
    static let version: Int32 = 1

    /// Limits that keep a hostile call from asking for absurd work: a plane of at most 2^28
    /// pixels (16384², as `geometry.size` allows), at most 65534 classes.
    static let maxPlanePixels = 1 << 28

    static func sliceMaps(labels: UnsafePointer<UInt16>?, n: Int, height: Int, width: Int, classes: Int,
                          spacing: UnsafePointer<Double>?, convention: String?, units: String?, scale: Int, threads: Int,
                          sdfOut: UnsafeMutablePointer<Float>?, rrwOut: UnsafeMutablePointer<Float>?) throws {
        func bad(_ m: String) -> MedprepError { MedprepError(.invalidArgument, m) }
        guard n >= 0 else { throw bad("plane count '\(n)' must not be negative.") }
        guard height >= 1, width >= 1, height <= maxPlanePixels / width else {
            throw bad("plane size '\(height)x\(width)' must be at least 1x1 and at most \(maxPlanePixels) pixels.")
        }
        guard classes >= 1, classes < Int(UInt16.max) else {
            throw bad("class count '\(classes)' is out of range 1...\(UInt16.max - 1).")
        }
        guard scale >= 1, scale <= max(height, width) else {
            throw bad("scale '\(scale)' must be at least 1 and at most the plane's larger side (\(max(height, width))).")
        }
        guard threads >= 1 else { throw bad("thread count '\(threads)' must be at least 1.") }
        guard sdfOut != nil || rrwOut != nil else { throw bad("neither an sdf nor an rrw output buffer was given.") }
        guard n == 0 || labels != nil else { throw bad("the label pointer is NULL.") }
        let conv: SDFConvention? = try sdfOut == nil ? nil : {
            let name = convention ?? "boundary"
            guard let c = SDFConvention(rawValue: name) else {
                throw bad("convention '\(name)' is unknown; expected 'boundary', 'plain' or 'itk'.")
            }
            return c
        }()
        let unit: DistanceUnits
        switch units ?? "px" {
        case "px": unit = .px
        case "mm": unit = .mm
        case let other: throw bad("units '\(other)' is unknown; expected 'px' or 'mm'.")
        }
        let plane = height * width
        let coarse = SliceMapKernel.planeSize(height: height, width: width, scale: scale)
        let (outPlane, overflow) = (classes * coarse.height).multipliedReportingOverflow(by: coarse.width)
        guard !overflow, n <= Int.max / max(1, outPlane) else { throw bad("the output of \(n) planes does not fit in memory.") }
        let kernel = SliceMapKernel(classCount: classes, convention: conv, rrw: rrwOut != nil, units: unit)
        let failures = UnsafeSendable(UnsafeMutableBufferPointer<MedprepError?>.allocate(capacity: max(1, n)))
        failures.value.initialize(repeating: nil)
        defer { failures.value.deinitialize(); failures.value.deallocate() }
        let lb = UnsafeSendable(labels), sb = UnsafeSendable(spacing), so = UnsafeSendable(sdfOut), ro = UnsafeSendable(rrwOut)
        parallelFor(n, threads: min(threads, max(1, n))) { j in
            do {
                let labels = Array(UnsafeBufferPointer(start: lb.value! + j * plane, count: plane))
                // The shard grid is [W, H]: spacing [column, row].
                let sp: [Double] = sb.value.map { p in [p[2 * j + 1], p[2 * j]] } ?? [1, 1]
                try kernel.fill(labels: labels, height: height, width: width, spacing: sp, scale: scale,
                                sdfOut: so.value.map { $0 + j * outPlane }, rrwOut: ro.value.map { $0 + j * outPlane })
            } catch {
                failures.value[j] = MedprepError(.invalidArgument, "plane \(j): \((error as? MedprepError)?.message ?? "\(error)")")
            }
        }
        if let e = failures.value.lazy.compactMap({ $0 }).first { throw e }
    }

    /// Copies `text` as a NUL-terminated C string into `buffer` (truncated to fit).
    static func write(_ text: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(text.utf8.prefix(capacity - 1))
        for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
        buffer[bytes.count] = 0
    }
}
