import MedprepCore
import Testing
@testable import MedprepMaps
@testable import MedprepProcessing

/// The C entry points of libmedprep_maps, called as C calls them: hand-computed maps, the same
/// floats as `SliceMapKernel` (what convert stores), independence from the thread count, and a
/// clean refusal (status 1 and a message) for every bad argument.
@Suite struct CABITests {
    /// Calls `medprep_slice_maps` on [n, h, w] planes; (status, sdf, rrw, message).
    func call(_ labels: [UInt16], n: Int, h: Int, w: Int, classes: Int, spacing: [Double]? = nil,
              convention: String = "boundary", units: String = "px", scale: Int = 1, threads: Int = 1,
              sdf: Bool = true, rrw: Bool = true) -> (Int32, [Float], [Float], String) {
        let sc = max(scale, 1), (ch, cw) = ((h + sc - 1) / sc, (w + sc - 1) / sc)
        let count = max(0, n * classes * ch * cw)
        var s = [Float](repeating: .nan, count: count), r = [Float](repeating: .nan, count: count)
        var msg = [CChar](repeating: 0, count: 256)
        let status = labels.withUnsafeBufferPointer { lp in
            s.withUnsafeMutableBufferPointer { sp in
                r.withUnsafeMutableBufferPointer { rp in
                    convention.withCString { cp in
                        units.withCString { up in
                            msg.withUnsafeMutableBufferPointer { mp in
                                let spc = spacing
                                return (spc ?? []).withUnsafeBufferPointer { spp in
                                    medprep_slice_maps(lp.baseAddress, Int64(n), Int64(h), Int64(w), Int32(classes),
                                                       spc == nil ? nil : spp.baseAddress, cp, up, Int32(scale), Int32(threads),
                                                       sdf ? sp.baseAddress : nil, rrw ? rp.baseAddress : nil,
                                                       mp.baseAddress, Int64(mp.count))
                                }
                            }
                        }
                    }
                }
            }
        }
        return (status, s, r, String(decoding: msg.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// One row 0 0 1 1 1 0 (H = 1, W = 6), class 1: boundary SDF 2 1 0 −1 0 1; RRW +1 outside,
    /// −d/max(d) inside with d = 1 2 1.
    @Test func handComputedRow() {
        let (status, s, r, msg) = call([0, 0, 1, 1, 1, 0], n: 1, h: 1, w: 6, classes: 2)
        #expect(status == 0, "\(msg)")
        #expect(Array(s[6..<12]) == [2, 1, 0, -1, 0, 1])
        #expect(Array(r[6..<12]) == [1, 1, -0.5, -1, -0.5, 1])
        // class 0: inside d = 2 1 . . . 1 -> max 2.
        #expect(Array(s[0..<6]) == [-1, 0, 1, 2, 1, 0])
        #expect(Array(r[0..<6]) == [-1, -0.5, 1, 1, 1, -0.5])
    }

    /// An empty class is all 0 (SDF) and all +1 (RRW), as docs/distance-maps.md says.
    @Test func emptyClassIsConstant() {
        let (status, s, r, _) = call([0, 0, 0, 0], n: 1, h: 2, w: 2, classes: 3)
        #expect(status == 0)
        #expect(Array(s[4..<12]).allSatisfy { $0 == 0 })
        #expect(Array(r[4..<12]).allSatisfy { $0 == 1 })
    }

    /// Several planes, mm units, a coarse scale and several threads: each plane equals what
    /// `SliceMapKernel` (the convert path) writes for it alone.
    @Test func planesEqualTheConvertKernel() throws {
        let (n, h, w, K) = (5, 13, 11, 4)
        // Scattered labels from a multiplicative hash (deterministic, no generator needed).
        var labels = (0..<(n * h * w)).map { UInt16((UInt64($0) &* 2_654_435_761 >> 9) % UInt64(K)) }
        for i in 0..<(h * w) { labels[2 * h * w + i] = 3 }  // a plane that one class fills
        let spacing = (0..<n).flatMap { [0.5 + Double($0) * 0.25, 1.5] }
        for (conv, units, scale) in [("boundary", "mm", 1), ("plain", "px", 2), ("itk", "mm", 4)] {
            let (status, s, r, msg) = call(labels, n: n, h: h, w: w, classes: K, spacing: spacing, convention: conv,
                                           units: units, scale: scale, threads: 3)
            #expect(status == 0, "\(msg)")
            let kernel = SliceMapKernel(classCount: K, convention: SDFConvention(rawValue: conv)!, rrw: true,
                                        units: DistanceUnits(rawValue: units)!)
            let (ch, cw) = SliceMapKernel.planeSize(height: h, width: w, scale: scale)
            let m = K * ch * cw
            for j in 0..<n {
                var es = [Float](repeating: 0, count: m), er = [Float](repeating: 0, count: m)
                try es.withUnsafeMutableBufferPointer { sp in
                    try er.withUnsafeMutableBufferPointer { rp in
                        try kernel.fill(labels: Array(labels[(j * h * w)..<((j + 1) * h * w)]), height: h, width: w,
                                        spacing: [spacing[2 * j + 1], spacing[2 * j]], scale: scale,
                                        sdfOut: sp.baseAddress, rrwOut: rp.baseAddress)
                    }
                }
                #expect(Array(s[(j * m)..<((j + 1) * m)]) == es, "\(conv) \(units) s=\(scale) plane \(j)")
                #expect(Array(r[(j * m)..<((j + 1) * m)]) == er, "\(conv) \(units) s=\(scale) plane \(j)")
            }
            let one = call(labels, n: n, h: h, w: w, classes: K, spacing: spacing, convention: conv, units: units,
                           scale: scale, threads: 1)
            #expect(one.1 == s && one.2 == r, "threads must not change the bytes")
        }
    }

    @Test(arguments: [
        ("label", "label value '5' is not below the class count 2"),
        ("classes", "class count '0'"),
        ("size", "plane size '0x2'"),
        ("scale", "scale '0'"),
        ("convention", "convention 'euclid' is unknown"),
        ("units", "units 'cm' is unknown"),
        ("spacing", "voxel spacing '-1.0'"),
        ("threads", "thread count '0'"),
        ("outputs", "neither an sdf nor an rrw output buffer"),
    ])
    func badArgumentsAreRefused(_ what: String, _ expected: String) {
        var labels: [UInt16] = [0, 1, 1, 0]
        let n = 1
        var (h, w, K, scale, threads) = (2, 2, 2, 1, 1)
        var (conv, units, spacing, sdf, rrw): (String, String, [Double]?, Bool, Bool) = ("boundary", "px", nil, true, true)
        switch what {
        case "label": labels[2] = 5
        case "classes": K = 0
        case "size": h = 0
        case "scale": scale = 0
        case "convention": conv = "euclid"
        case "units": units = "cm"
        case "spacing": (units, spacing) = ("mm", [-1, 1])
        case "threads": threads = 0
        default: (sdf, rrw) = (false, false)
        }
        let (status, _, _, msg) = call(labels, n: n, h: h, w: w, classes: K, spacing: spacing,
                                       convention: conv, units: units, scale: scale, threads: threads, sdf: sdf, rrw: rrw)
        #expect(status == 1)
        #expect(msg.contains(expected), "\(msg)")
    }
}
