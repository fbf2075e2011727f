import MedprepCore
import Testing
@testable import MedprepProcessing

/// Signed distance and RRW maps: conventions pinned on hand-computed examples, the general case
/// against brute force, slice-wise and multi-scale modes, determinism.
@Suite struct DistanceMapTests {
    // MARK: - the 1D example 000111000 (docs/distance-maps.md works it out)

    static let line: [UInt8] = [0, 0, 0, 1, 1, 1, 0, 0, 0]

    func sdf1D(_ conv: SDFConvention, _ labels: [UInt8] = line, classes: [Int] = [1]) throws -> [Float] {
        try DistanceMaps.signedDistance(labels: labels, dims: [labels.count], classes: classes, convention: conv)
    }

    @Test func boundaryConventionOn000111000() throws {
        #expect(try sdf1D(.boundary) == [3, 2, 1, 0, -1, 0, 1, 2, 3])
    }

    @Test func plainConventionOn000111000() throws {
        #expect(try sdf1D(.plain) == [3, 2, 1, -1, -2, -1, 1, 2, 3])
    }

    /// ITK SignedMaurerDistanceMap (C++ defaults: inside negative, not squared, image spacing) gives
    /// [3, 2, 1, -0, -1, -0, 1, 2, 3]: the contour voxels 3 and 5 are 0, voxel 4 is one step from them.
    @Test func itkConventionOn000111000() throws {
        #expect(try sdf1D(.itk) == [3, 2, 1, 0, -1, 0, 1, 2, 3])
    }

    /// The background class of the same line (class 0) in each convention.
    @Test func backgroundClassOn000111000() throws {
        #expect(try sdf1D(.boundary, classes: [0]) == [-2, -1, 0, 1, 2, 1, 0, -1, -2])
        #expect(try sdf1D(.plain, classes: [0]) == [-3, -2, -1, 1, 2, 1, -1, -2, -3])
        #expect(try sdf1D(.itk, classes: [0]) == [-2, -1, 0, 1, 2, 1, 0, -1, -2])
    }

    @Test func rrwOn000111000() throws {
        let r = try RegionMaps.rrw(labels: Self.line, dims: [9])
        // class 0: d = 3 2 1 . . . 1 2 3 -> -d/3; class 1: d = 1 2 1 -> -d/2.
        let third: Float = Float(-1.0 / 3.0), twoThirds = Float(-2.0 / 3.0)
        #expect(Array(r[0..<9]) == [-1, twoThirds, third, 1, 1, 1, third, twoThirds, -1])
        #expect(Array(r[9..<18]) == [1, 1, 1, -0.5, -1, -0.5, 1, 1, 1])
    }

    @Test func millimetresScaleDistances() throws {
        // spacing 0.5 mm: boundary offset h = 0.5 mm keeps the inner boundary at 0.
        let b = try DistanceMaps.signedDistance(labels: Self.line, dims: [9], spacing: [0.5], classes: [1],
                                                convention: .boundary, units: .mm)
        #expect(b == [1.5, 1, 0.5, 0, -0.5, 0, 0.5, 1, 1.5])
        let p = try DistanceMaps.signedDistance(labels: Self.line, dims: [9], spacing: [0.5], classes: [1],
                                                convention: .plain, units: .mm)
        #expect(p == [1.5, 1, 0.5, -0.5, -1, -0.5, 0.5, 1, 1.5])
        // px ignores spacing.
        let px = try DistanceMaps.signedDistance(labels: Self.line, dims: [9], spacing: [0.5], classes: [1],
                                                 convention: .boundary, units: .px)
        #expect(px == [3, 2, 1, 0, -1, 0, 1, 2, 3])
    }

    // MARK: - empty and full classes

    @Test func emptyClassIsZeroSDFAndOneRRW() throws {
        let labels = [UInt8](repeating: 0, count: 6)
        for conv in SDFConvention.allCases {
            #expect(try sdf1D(conv, labels, classes: [2]) == [0, 0, 0, 0, 0, 0], "\(conv)")
        }
        let r = try RegionMaps.rrw(labels: labels, dims: [6], classes: [0, 2])
        #expect(Array(r[6..<12]) == [1, 1, 1, 1, 1, 1])
    }

    /// A class filling the grid is measured to scipy's virtual background voxel at index -1.
    @Test func fullClassFollowsScipysVirtualVoxel() throws {
        let labels = [UInt8](repeating: 1, count: 5)
        // scipy: distance_transform_edt(ones(5)) = 1 2 3 4 5.
        #expect(try sdf1D(.boundary, labels, classes: [1]) == [0, -1, -2, -3, -4])
        #expect(try sdf1D(.plain, labels, classes: [1]) == [-1, -2, -3, -4, -5])
        // ITK convention: the contour is the voxel next to the virtual one (index 0).
        #expect(try sdf1D(.itk, labels, classes: [1]) == [0, -1, -2, -3, -4])
        let r = try RegionMaps.rrw(labels: labels, dims: [5], classes: [0, 1])
        #expect(Array(r[0..<5]) == [1, 1, 1, 1, 1])
        #expect(Array(r[5..<10]) == [-0.2, -0.4, -0.6, -0.8, -1])
    }

    @Test func fullClassIn2DOnBothVirtualAxes() throws {
        let labels = [UInt8](repeating: 1, count: 6)  // dims [3, 2]
        let first = try RegionMaps.rrw(labels: labels, dims: [3, 2], classes: [1], virtualVoxelAxis: .first)
        // d(x, y) = sqrt((x+1)^2 + y^2): 1 2 3 / sqrt2 sqrt5 sqrt10.
        let d1: [Double] = [1, 2, 3, 2.0.squareRoot(), 5.0.squareRoot(), 10.0.squareRoot()]
        #expect(zip(first, d1).allSatisfy { abs(Double($0) + $1 / 10.0.squareRoot()) < 1e-6 })
        let last = try RegionMaps.rrw(labels: labels, dims: [3, 2], classes: [1], virtualVoxelAxis: .last)
        // d(x, y) = sqrt(x^2 + (y+1)^2): 1 sqrt2 sqrt5 / 2 sqrt5 sqrt8.
        let d2: [Double] = [1, 2.0.squareRoot(), 5.0.squareRoot(), 2, 5.0.squareRoot(), 8.0.squareRoot()]
        #expect(zip(last, d2).allSatisfy { abs(Double($0) + $1 / 8.0.squareRoot()) < 1e-6 })
        let itk = try DistanceMaps.signedDistance(labels: labels, dims: [3, 2], classes: [1], convention: .itk,
                                                  virtualVoxelAxis: .last)
        // Contour next to the virtual voxel (0, -1): (0, 0) and (1, 0).
        let wantITK: [Float] = [0, 0, -1, -1, -1, -2.0.squareRoot()].map { Float($0) }
        #expect(zip(itk, wantITK).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    // MARK: - ITK contour on a 2D shape (values from SimpleITK 2.5.7, checked by hand)

    /// rows (y) top to bottom; x = column.
    static let shape: [[UInt8]] = [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]

    @Test func itkAndBoundaryDifferOnDiagonalContours() throws {
        let labels = Self.shape.flatMap { $0 }
        let itk = try DistanceMaps.signedDistance(labels: labels, dims: [8, 7], classes: [1], convention: .itk)
        // sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True) x 1e4
        let sitk: [[Int]] = [
            [28284, 22361, 14142, 10000, 10000, 10000, 10000, 14142],
            [22361, 14142, 10000, 0, 0, 0, 0, 10000],
            [14142, 10000, 0, 0, -10000, -10000, 0, 10000],
            [10000, 0, 0, -10000, -14142, -10000, 0, 10000],
            [10000, 0, -10000, -10000, -10000, 0, 0, 10000],
            [10000, 0, 0, 0, 0, 0, 10000, 14142],
            [14142, 10000, 10000, 10000, 10000, 10000, 14142, 22361],
        ]
        #expect(itk.map { Int(($0 * 1e4).rounded()) } == sitk.flatMap { $0 })
        // Boundary convention: -(EDT(M) - 1) inside; voxel (3, 2) has its nearest outside voxel
        // diagonally at (2, 1): -(sqrt2 - 1), where ITK says 0 (it is on the 8-connected contour).
        let b = try DistanceMaps.signedDistance(labels: labels, dims: [8, 7], classes: [1], convention: .boundary)
        #expect(abs(b[2 * 8 + 3] - Float(1 - 2.0.squareRoot())) < 1e-6)
        #expect(itk[2 * 8 + 3] == 0)
        #expect(abs(b[3 * 8 + 4] - Float(1 - 8.0.squareRoot())) < 1e-6)
        #expect(abs(itk[3 * 8 + 4] + Float(2.0.squareRoot())) < 1e-6)
    }

    // MARK: - general case against brute force

    static let grids: [(dims: [Int], spacing: [Double])] = [
        ([13, 9], [1, 1]), ([13, 9], [0.6, 2.5]), ([12, 10, 8], [1, 1, 1]), ([12, 10, 8], [0.8, 1.3, 3.1]),
    ]

    @Test(arguments: 0..<grids.count, [DistanceUnits.px, .mm])
    func allConventionsMatchBruteForce(gridIndex: Int, units: DistanceUnits) throws {
        let (dims, spacing) = Self.grids[gridIndex]
        var rng = Brute.RNG(UInt64(300 + gridIndex))
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let sp = units == .mm ? spacing : [1, 1, 1]
        let h = units == .mm ? spacing.min()! : 1
        let grid = try MapGrid(dims: dims, spacing: spacing)
        let classes = [0, 1, 2, 3, 5]  // 5 is absent: an empty class
        let n = labels.count
        for conv in SDFConvention.allCases {
            let res = try DistanceMaps.compute(labels: labels, grid: grid, classes: classes,
                                               options: DistanceMapOptions(sdf: conv, rrw: true, units: units))
            for (k, c) in classes.enumerated() {
                let want = Brute.sdf(labels, cls: Int32(c), dims: dims, spacing: sp, convention: conv, h: h)
                let got = Array(res.sdf![(k * n)..<((k + 1) * n)])
                let err = Brute.maxRelError(got, want)
                #expect(err <= 1e-4, "\(conv) class \(c) dims \(dims) \(units): \(err)")
                if conv == .boundary {
                    let wantR = Brute.rrw(labels, cls: Int32(c), dims: dims, spacing: sp)
                    let gotR = Array(res.rrw![(k * n)..<((k + 1) * n)])
                    #expect(Brute.maxRelError(gotR, wantR) <= 1e-4, "rrw class \(c) with \(conv)")
                } else {
                    // RRW is the same whatever SDF convention is computed beside it
                    let base = try DistanceMaps.compute(labels: labels, grid: grid, classes: classes,
                                                        options: DistanceMapOptions(sdf: nil, rrw: true, units: units))
                    #expect(base.rrw! == res.rrw!)
                }
            }
        }
    }

    /// The outside-only route (inside distances as the minimum of the other classes' outside
    /// distances) against the per-class two-sided transforms: same values (bit for bit in px).
    @Test(arguments: 0..<grids.count, [DistanceUnits.px, .mm])
    func outsideOnlyRouteMatchesTwoSidedTransforms(gridIndex: Int, units: DistanceUnits) throws {
        let (dims, spacing) = Self.grids[gridIndex]
        var rng = Brute.RNG(UInt64(900 + gridIndex))
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let grid = try MapGrid(dims: dims, spacing: spacing)
        let classes = [0, 1, 2, 3, 7]  // 7 is absent
        let keys = DistanceMaps.classKeys(DistanceMaps.int32Labels(labels), classes: classes)
        let K = classes.count, n = labels.count
        for conv in [SDFConvention.boundary, .plain] {
            let opts = DistanceMapOptions(sdf: conv, rrw: true, units: units)
            var a = [Float](repeating: .nan, count: 2 * K * n), b = a
            for (twoSided, out) in [(false, 0), (true, 1)] {
                var buf = [Float](repeating: .nan, count: 2 * K * n)
                keys.withUnsafeBufferPointer { kp in
                    buf.withUnsafeMutableBufferPointer { o in
                        MapKernel.run(keys: kp.baseAddress!, grid: grid, K: K, options: opts, threads: 1,
                                      sdfOut: o.baseAddress!, rrwOut: o.baseAddress! + K * n, classStride: n,
                                      twoSidedOnly: twoSided)
                    }
                }
                if out == 0 { a = buf } else { b = buf }
            }
            #expect(!a.contains { $0.isNaN })
            if units == .px {
                #expect(a == b, "\(conv) \(dims)")
            } else {
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                #expect(worst <= 1e-6, "\(conv) \(dims): \(worst)")
            }
        }
    }

    /// Convert's entry point: labels that are class indices 0..<K, maps written into the caller's
    /// buffers (every value, including an empty class's), against brute force.
    @Test(arguments: 0..<grids.count, [DistanceUnits.px, .mm])
    func classIndexMapsIntoBuffersMatchBruteForce(gridIndex: Int, units: DistanceUnits) throws {
        let (dims, spacing) = Self.grids[gridIndex]
        var rng = Brute.RNG(UInt64(700 + gridIndex))
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let keys = labels.map { UInt16($0) }
        let sp = units == .mm ? spacing : [1, 1, 1]
        let h = units == .mm ? spacing.min()! : 1
        let grid = try MapGrid(dims: dims, spacing: spacing)
        let K = 5, n = labels.count  // class 4 is empty
        for (sdfOn, rrwOn) in [(true, true), (true, false), (false, true)] {
            var sdf = [Float](repeating: .nan, count: K * n), rrw = sdf
            try keys.withUnsafeBufferPointer { kp in
                try sdf.withUnsafeMutableBufferPointer { so in
                    try rrw.withUnsafeMutableBufferPointer { ro in
                        try DistanceMaps.compute(classIndices: kp, K: K, grid: grid,
                                                 options: DistanceMapOptions(sdf: sdfOn ? .boundary : nil, rrw: rrwOn, units: units),
                                                 sdfOut: sdfOn ? so.baseAddress! : nil, rrwOut: rrwOn ? ro.baseAddress! : nil)
                    }
                }
            }
            for c in 0..<K {
                let block = (c * n)..<((c + 1) * n)
                if sdfOn {
                    let want = Brute.sdf(labels, cls: Int32(c), dims: dims, spacing: sp, convention: .boundary, h: h)
                    #expect(Brute.maxRelError(Array(sdf[block]), want) <= 1e-4, "sdf class \(c) \(dims) \(units)")
                } else {
                    #expect(sdf[block].allSatisfy { $0.isNaN }, "sdf buffer untouched when not asked for")
                }
                if rrwOn {
                    let want = Brute.rrw(labels, cls: Int32(c), dims: dims, spacing: sp)
                    #expect(Brute.maxRelError(Array(rrw[block]), want) <= 1e-4, "rrw class \(c) \(dims) \(units)")
                }
            }
        }
    }

    @Test func classIndexMapsRefuseBadInput() throws {
        let grid = try MapGrid(dims: [4, 2])
        var out = [Float](repeating: 0, count: 3 * 8)
        let opts = DistanceMapOptions(sdf: .boundary, rrw: true)
        func run(_ labels: [UInt16], K: Int, sdf: Bool = true, rrw: Bool = true) throws {
            try labels.withUnsafeBufferPointer { kp in
                try out.withUnsafeMutableBufferPointer { o in
                    try DistanceMaps.compute(classIndices: kp, K: K, grid: grid, options: opts,
                                             sdfOut: sdf ? o.baseAddress! : nil, rrwOut: rrw ? o.baseAddress! : nil)
                }
            }
        }
        let e = #expect(throws: MedprepError.self) { try run([0, 1, 2, 3, 0, 0, 0, 0], K: 3) }
        #expect(e?.message.contains("label value '3' is not below the class count 3") == true)
        #expect(throws: MedprepError.self) { try run([0, 1, 2], K: 3) }                    // 3 labels for 8 voxels
        #expect(throws: MedprepError.self) { try run([UInt16](repeating: 0, count: 8), K: 3, rrw: false) }  // rrw asked, no buffer
        #expect(throws: MedprepError.self) { try run([UInt16](repeating: 0, count: 8), K: 0) }
    }

    @Test func rrwRanges() throws {
        var rng = Brute.RNG(11)
        let dims = [20, 16, 6]
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let r = try RegionMaps.rrw(labels: labels, dims: dims, spacing: [1, 1, 2.5], classes: [0, 1, 2, 3, 9], units: .mm)
        let n = labels.count
        for (k, c) in [0, 1, 2, 3, 9].enumerated() {
            let block = r[(k * n)..<((k + 1) * n)]
            let inside = zip(labels, block).filter { $0.0 == Int32(c) }.map(\.1)
            let outside = zip(labels, block).filter { $0.0 != Int32(c) }.map(\.1)
            #expect(outside.allSatisfy { $0 == 1 })
            if inside.isEmpty { continue }
            #expect(inside.allSatisfy { $0 >= -1 && $0 < 0 })
            #expect(inside.min() == -1)
        }
    }

    // MARK: - labels, classes, errors

    @Test func labelsOutsideTheClassListCountAsOutside() throws {
        // label 7 is not a class: for class 1 it is outside, like 0.
        let labels: [Int32] = [0, 7, 7, 1, 1, 1, 0, 0, 0]
        let withSeven = try DistanceMaps.signedDistance(labels: labels, dims: [9], classes: [0, 1])
        #expect(Array(withSeven[9..<18]) == [3, 2, 1, 0, -1, 0, 1, 2, 3])
        // class 0 sees 7 as outside too.
        #expect(Array(withSeven[0..<9]) == [0, 1, 2, 3, 2, 1, 0, -1, -2])
        #expect(DistanceMaps.defaultClasses(labels) == Array(0...7))
    }

    @Test func classListErrors() {
        #expect(throws: MedprepError.self) {
            try DistanceMaps.signedDistance(labels: Self.line, dims: [9], classes: [])
        }
        #expect(throws: MedprepError.self) {
            try DistanceMaps.signedDistance(labels: Self.line, dims: [9], classes: [1, 1])
        }
        #expect(throws: MedprepError.self) {
            try DistanceMaps.signedDistance(labels: Self.line, dims: [9], mode: .slices(axis: 3))
        }
        #expect(throws: MedprepError.self) {
            try DistanceMaps.signedDistance(labels: Self.line, dims: [9], threads: 0)
        }
    }

    // MARK: - slice-wise mode

    @Test(arguments: [0, 1, 2])
    func sliceModeIsEachSliceOnItsOwn(axis: Int) throws {
        var rng = Brute.RNG(UInt64(400 + axis))
        let dims = [9, 7, 5], spacing = [0.9, 1.4, 2.2]
        let labels = Brute.labels(&rng, dims: dims, nLabels: 3, blobs: true)
        // make one slice a single label so the full-class rule is exercised per slice
        var l = labels
        for i in l.indices where Brute.coords(i, dims)[axis] == 1 { l[i] = 2 }
        let grid = try MapGrid(dims: dims, spacing: spacing)
        let res = try DistanceMaps.compute(labels: l, grid: grid, classes: [0, 1, 2],
                                           options: DistanceMapOptions(sdf: .boundary, rrw: true, units: .mm,
                                                                       mode: .slices(axis: axis)))
        let rest = (0..<3).filter { $0 != axis }
        let sliceDims = rest.map { dims[$0] }, sliceSpacing = rest.map { spacing[$0] }
        let n = l.count
        for s in 0..<dims[axis] {
            let idx = (0..<n).filter { Brute.coords($0, dims)[axis] == s }  // increasing = slice's x-fastest order
            let sliceLabels = idx.map { l[$0] }
            for (k, c) in [0, 1, 2].enumerated() {
                let inSlice = sliceLabels.map { $0 == Int32(c) }
                let want: [Double]
                let wantR: [Double]
                if inSlice.allSatisfy({ $0 }) {
                    // full slice: virtual voxel at index -1 of the slice's first axis
                    let d = (0..<idx.count).map { j -> Double in
                        let u = Double(j % sliceDims[0] + 1) * sliceSpacing[0], v = Double(j / sliceDims[0]) * sliceSpacing[1]
                        return (u * u + v * v).squareRoot()
                    }
                    want = d.map { -($0 - sliceSpacing.min()!) }
                    wantR = d.map { -$0 / d.max()! }
                } else {
                    want = Brute.sdf(sliceLabels, cls: Int32(c), dims: sliceDims, spacing: sliceSpacing,
                                     convention: .boundary, h: sliceSpacing.min()!)
                    wantR = Brute.rrw(sliceLabels, cls: Int32(c), dims: sliceDims, spacing: sliceSpacing)
                }
                let got = idx.map { res.sdf![k * n + $0] }, gotR = idx.map { res.rrw![k * n + $0] }
                #expect(Brute.maxRelError(got, want) <= 1e-4, "axis \(axis) slice \(s) class \(c)")
                #expect(Brute.maxRelError(gotR, wantR) <= 1e-4, "rrw axis \(axis) slice \(s) class \(c)")
            }
        }
    }

    @Test func mapsDoNotDependOnThreadCount() throws {
        var rng = Brute.RNG(21)
        let dims = [41, 23, 13]
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let grid = try MapGrid(dims: dims, spacing: [0.7, 0.7, 2])
        for mode in [MapMode.volume, .slices(axis: 2), .slices(axis: 0)] {
            for conv in SDFConvention.allCases {
                func run(_ t: Int) throws -> DistanceMapResult {
                    try DistanceMaps.compute(labels: labels, grid: grid,
                                             options: DistanceMapOptions(sdf: conv, rrw: true, units: .mm, mode: mode, threads: t))
                }
                let a = try run(1)
                for t in [2, 5] {
                    let b = try run(t)
                    #expect(a.sdf!.map(\.bitPattern) == b.sdf!.map(\.bitPattern), "\(mode) \(conv) threads \(t)")
                    #expect(a.rrw!.map(\.bitPattern) == b.rrw!.map(\.bitPattern), "\(mode) \(conv) threads \(t)")
                }
            }
        }
    }

    // MARK: - multi-scale

    @Test func downsampleTakesIndexTimesFactor() throws {
        let dims = [5, 4, 3]
        let labels = (0..<60).map { Int32($0) }
        let grid = try MapGrid(dims: dims, spacing: [1, 2, 3])
        let (l2, g2) = try DistanceMaps.downsampleNearest(labels: labels, grid: grid, factor: 2)
        #expect(g2.dims == [3, 2, 2])
        #expect(g2.spacing == [2, 4, 6])
        // coarse (x, y, z) takes source (2x, 2y, 2z): index (2z*4 + 2y)*5 + 2x.
        var want = [Int32]()
        for z in 0..<2 { for y in 0..<2 { for x in 0..<3 { want.append(Int32((2 * z * 4 + 2 * y) * 5 + 2 * x)) } } }
        #expect(l2 == want)
        // slices along z: z is kept.
        let (l3, g3) = try DistanceMaps.downsampleNearest(labels: labels, grid: grid, factor: 4, mode: .slices(axis: 2))
        #expect(g3.dims == [2, 1, 3])
        #expect(g3.spacing == [4, 8, 3])
        #expect(l3 == [0, 4, 20, 24, 40, 44])
        #expect(throws: MedprepError.self) { try DistanceMaps.downsampleNearest(labels: labels, grid: grid, factor: 0) }
    }

    @Test func multiScaleMapsAreComputedOnTheirOwnGrid() throws {
        var rng = Brute.RNG(31)
        let dims = [24, 20]
        let labels = Brute.labels(&rng, dims: dims, nLabels: 3, blobs: true)
        let grid = try MapGrid(dims: dims, spacing: [0.5, 0.5])
        let opts = DistanceMapOptions(sdf: .boundary, rrw: true, units: .mm)
        let all = try DistanceMaps.multiScale(labels: labels, grid: grid, classes: [0, 1, 2], scales: [1, 2, 4, 8], options: opts)
        #expect(all.map(\.scale) == [1, 2, 4, 8])
        #expect(all.map(\.result.grid.dims) == [[24, 20], [12, 10], [6, 5], [3, 3]])
        for (s, res) in all {
            let (l, g) = try DistanceMaps.downsampleNearest(labels: labels, grid: grid, factor: s)
            for k in 0..<3 {
                let want = Brute.sdf(l, cls: Int32(k), dims: g.dims, spacing: g.spacing, convention: .boundary,
                                     h: g.spacing.min()!)
                let got = Array(res.sdf![(k * g.count)..<((k + 1) * g.count)])
                #expect(Brute.maxRelError(got, want) <= 1e-4, "scale \(s) class \(k)")
            }
        }
    }

    @Test func summariesCountVoxelsAndRanges() throws {
        let res = try DistanceMaps.compute(labels: Self.line, grid: MapGrid(dims: [9]),
                                           options: DistanceMapOptions(sdf: .boundary, rrw: true))
        #expect(res.summaries().map(\.classValue) == [0, 1])
        #expect(res.summaries().map(\.voxels) == [6, 3])
        #expect(res.summaries()[1].sdfMin == -1 && res.summaries()[1].sdfMax == 3)
        #expect(res.summaries()[0].rrwMin == -1 && res.summaries()[0].rrwMax == 1)
    }
}
