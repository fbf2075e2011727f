import Foundation
import MedprepCore
import Testing
@testable import MedprepProcessing

/// Loads the oracle fixtures written by tools/fixtures/make_processing_fixtures.py (nibabel,
/// scipy, numpy); the tests never run Python.
enum ProcessingFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent("processing")

    static func load<T: Decodable>(_ file: String, as: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: root.appendingPathComponent(file)))
    }

    static func affine(_ rows: [[Double]]) -> Affine4 { Affine4(rowMajor: rows.flatMap { $0 }) }

    /// Largest |a - b| / max(1, |b|).
    static func maxRelError(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1) / max(1, abs($1.1))) }
    }

    /// Deterministic values for tests that need bulk data.
    static func noise(_ n: Int, seed: UInt64) -> [Float] {
        var g = Brute.RNG(seed)
        return (0..<n).map { _ in Float(g.unit() * 200 - 50) }
    }
}

struct GeometryFixture: Decodable {
    struct Target: Decodable {
        let output_axis: [Int], flipped: [Bool], dims: [Int], affine: [[Double]], spacing: [Double], data: [Double]
    }
    struct ReorientCase: Decodable {
        let name: String, dims: [Int], affine: [[Double]], spacing: [Double], orientation: String
        let data: [Double], targets: [String: Target], channels: Int?
    }
    struct ImageCase: Decodable {
        let name: String, dims: [Int], spacing: [Double], target: [Double?], affine: [[Double]], data: [Double]
        let out_dims: [Int], out_spacing: [Double], out_affine: [[Double]], linear: [Double], cubic: [Double]
    }
    struct LabelCase: Decodable {
        let name: String, dims: [Int], spacing: [Double], target: [Double?], data: [Int]
        let out_dims: [Int], nearest: [Int], onehot: [Int], tie_count: Int?
    }
    struct Resampling: Decodable { let images: [ImageCase], labels: [LabelCase] }
    let reorientation: [ReorientCase]
    let resampling: Resampling
}

@Suite struct GeometryTests {
    static let fixture: GeometryFixture = try! ProcessingFixtures.load("geometry.json")

    // MARK: - reorientation (oracle: nibabel)

    @Test func fixturesCoverPermutedAndObliqueAffines() {
        let names = Set(Self.fixture.reorientation.map(\.name))
        #expect(names.isSuperset(of: ["ras", "lps", "psr", "asl", "oblique", "oblique_permuted", "rgb_psr"]))
    }

    @Test(arguments: GeometryTests.fixture.reorientation.map(\.name))
    func reorientMatchesNibabel(name: String) throws {
        let c = try #require(Self.fixture.reorientation.first { $0.name == name })
        let affine = ProcessingFixtures.affine(c.affine)
        #expect(Orientation.code(affine) == c.orientation)
        let channels = c.channels ?? 1
        let image = try Volume3D(voxels: c.data.map(Float.init), dims: c.dims, spacing: c.spacing, channels: channels, affine: affine)
        // The same voxels as labels exercise the 2-byte word path.
        let labels = try Volume3D(voxels: c.data.map { UInt16($0) }, dims: c.dims, spacing: c.spacing, channels: channels, affine: affine)
        for (code, t) in c.targets.sorted(by: { $0.key < $1.key }) {
            let transform = try AxisReorientation.between(affine: affine, target: code)
            #expect(transform.outputAxis == t.output_axis, "\(name) -> \(code)")
            #expect(transform.flipped == t.flipped, "\(name) -> \(code)")
            let out = try Reorientation.reorient(image, to: code, threads: 2)
            #expect(out.dims == t.dims)
            #expect(out.voxels == t.data.map(Float.init), "\(name) -> \(code) voxels")
            #expect(out.affine.maxAbsDifference(ProcessingFixtures.affine(t.affine)) <= 1e-6, "\(name) -> \(code) affine")
            #expect(zip(out.spacing, t.spacing).allSatisfy { abs($0 - $1) <= 1e-6 * $1 }, "\(name) -> \(code) spacing (nibabel zooms are float32)")
            #expect(out.orientation == code)
            let lab = try Reorientation.reorient(labels, by: transform, threads: 3)
            #expect(lab.voxels == t.data.map { UInt16($0) }, "\(name) -> \(code) labels")
        }
    }

    @Test func reorientingToTheCurrentOrientationIsIdentity() throws {
        let c = try #require(Self.fixture.reorientation.first { $0.name == "lps" })
        let v = try Volume3D(voxels: c.data.map(Float.init), dims: c.dims, spacing: c.spacing, affine: ProcessingFixtures.affine(c.affine))
        let t = try AxisReorientation.between(affine: v.affine, target: "LPS")
        #expect(t.isIdentity)
        let out = try Reorientation.reorient(v, to: "lps")
        #expect(out.voxels == v.voxels && out.affine == v.affine)
    }

    @Test func reorientationRoundTripsAndKeepsWorldPositions() throws {
        let c = try #require(Self.fixture.reorientation.first { $0.name == "oblique_permuted" })
        let v = try Volume3D(voxels: c.data.map(Float.init), dims: c.dims, spacing: c.spacing, affine: ProcessingFixtures.affine(c.affine))
        let ras = try Reorientation.reorient(v)
        let back = try Reorientation.reorient(ras, to: c.orientation)
        #expect(back.voxels == v.voxels && back.dims == v.dims)
        #expect(back.affine.maxAbsDifference(v.affine) <= 1e-9)
        // Every voxel keeps its world position: find each RAS voxel's value at its world point.
        let t = try AxisReorientation.between(affine: v.affine, target: "RAS")
        for o in [(0, 0, 0), (1, 2, 3), (ras.dims[0] - 1, ras.dims[1] - 1, ras.dims[2] - 1)] {
            var i = [0, 0, 0]
            let oo = [o.0, o.1, o.2]
            for a in 0..<3 { let k = oo[t.outputAxis[a]]; i[a] = t.flipped[a] ? v.dims[a] - 1 - k : k }
            let w1 = ras.affine.apply((Double(o.0), Double(o.1), Double(o.2)))
            let w2 = v.affine.apply((Double(i[0]), Double(i[1]), Double(i[2])))
            #expect(abs(w1.0 - w2.0) + abs(w1.1 - w2.1) + abs(w1.2 - w2.2) < 1e-9)
            #expect(ras.voxels[(o.2 * ras.dims[1] + o.1) * ras.dims[0] + o.0] == v.voxels[(i[2] * v.dims[1] + i[1]) * v.dims[0] + i[0]])
        }
    }

    @Test(arguments: ["RAX", "RRA", "RA", "RASL", "", "SSS"])
    func invalidOrientationCodesAreRejected(code: String) {
        #expect(throws: MedprepError.self) { try AxisReorientation.parse(code) }
    }

    @Test func reorientationBytesDoNotDependOnThreads() throws {
        let dims = [37, 23, 11]
        let aff = Affine4(rowMajor: [0, 0, -2, 5, -1, 0, 0, 3, 0, 1.5, 0, 1, 0, 0, 0, 1])  // PSL-ish
        let v = try Volume3D(voxels: ProcessingFixtures.noise(dims.reduce(1, *), seed: 7), dims: dims, affine: aff)
        let ref = try Reorientation.reorient(v, threads: 1).voxels
        for t in [2, 3, 8] { #expect(try Reorientation.reorient(v, threads: t).voxels == ref) }
    }

    // MARK: - resampling (oracle: scipy.ndimage.zoom grid_mode=True, mode='nearest')

    @Test func outputSizeRoundsHalfToEvenAndNeverBelowOne() {
        #expect(ResamplePlan.outputSize(5, spacing: 1, target: 2) == 2)     // 2.5
        #expect(ResamplePlan.outputSize(7, spacing: 1, target: 2) == 4)     // 3.5
        #expect(ResamplePlan.outputSize(3, spacing: 1, target: 2) == 2)     // 1.5
        #expect(ResamplePlan.outputSize(4, spacing: 1, target: 100) == 1)   // 0.04
        #expect(ResamplePlan.outputSize(80, spacing: 2.5, target: 1) == 200)
    }

    @Test func badTargetsAreRejected() throws {
        let v = try Volume3D(voxels: [Float](repeating: 0, count: 8), dims: [2, 2, 2])
        for bad: [Double?] in [[0, nil, nil], [-1, 1, 1], [.nan, 1, 1], [1, 1]] {
            #expect(throws: MedprepError.self) { try Resampling.resample(v, to: bad) }
        }
    }

    @Test(arguments: GeometryTests.fixture.resampling.images.map(\.name))
    func imageResamplingMatchesScipy(name: String) throws {
        let c = try #require(Self.fixture.resampling.images.first { $0.name == name })
        let v = try Volume3D(voxels: c.data.map(Float.init), dims: c.dims, spacing: c.spacing, affine: ProcessingFixtures.affine(c.affine))
        for (kind, want) in [(ImageInterpolation.linear, c.linear), (.cubic, c.cubic)] {
            let out = try Resampling.resample(v, to: c.target, interpolation: kind, threads: 2)
            #expect(out.dims == c.out_dims, "\(name) \(kind)")
            let err = ProcessingFixtures.maxRelError(out.voxels, want)
            #expect(err <= 1e-4, "\(name) \(kind): max relative error \(err)")
            #expect(zip(out.spacing, c.out_spacing).allSatisfy { abs($0 - $1) <= 1e-12 })
            #expect(out.affine.maxAbsDifference(ProcessingFixtures.affine(c.out_affine)) <= 1e-9)
        }
    }

    @Test(arguments: GeometryTests.fixture.resampling.labels.map(\.name))
    func labelResamplingMatchesScipyExactly(name: String) throws {
        let c = try #require(Self.fixture.resampling.labels.first { $0.name == name })
        let v = try Volume3D(voxels: c.data.map { UInt16($0) }, dims: c.dims, spacing: c.spacing)
        let near = try Resampling.resample(v, to: c.target, method: .nearest, threads: 2)
        #expect(near.dims == c.out_dims)
        #expect(near.voxels == c.nearest.map { UInt16($0) }, "\(name) nearest")
        let oh = try Resampling.resample(v, to: c.target, method: .oneHotLinear, threads: 3)
        #expect(oh.voxels == c.onehot.map { UInt16($0) }, "\(name) one-hot")
        // Labels never get new values.
        #expect(Set(oh.voxels).isSubset(of: Set(v.voxels)) && Set(near.voxels).isSubset(of: Set(v.voxels)))
    }

    @Test func oneHotFixtureHasExactTies() throws {
        let c = try #require(Self.fixture.resampling.labels.first { $0.name == "checkerboard_ties" })
        #expect((c.tie_count ?? 0) > 0)
    }

    /// The resampled grid covers the same physical extent: the outer corners of the first and
    /// last output voxels (index -0.5 and n - 0.5) land on those of the input.
    @Test func resampledAffineKeepsThePhysicalExtent() throws {
        let c = try #require(Self.fixture.resampling.images.first { $0.name == "mixed" })
        let a = ProcessingFixtures.affine(c.affine)
        let plan = try ResamplePlan(dims: c.dims, spacing: c.spacing, target: c.target)
        let b = plan.outputAffine(a)
        let lo = (-0.5, -0.5, -0.5)
        let hiIn = (Double(c.dims[0]) - 0.5, Double(c.dims[1]) - 0.5, Double(c.dims[2]) - 0.5)
        let hiOut = (Double(plan.outputDims[0]) - 0.5, Double(plan.outputDims[1]) - 0.5, Double(plan.outputDims[2]) - 0.5)
        for (p, q) in [(a.apply(lo), b.apply(lo)), (a.apply(hiIn), b.apply(hiOut))] {
            #expect(abs(p.0 - q.0) + abs(p.1 - q.1) + abs(p.2 - q.2) < 1e-9)
        }
        #expect(zip(b.columnNorms, plan.outputSpacing(c.spacing)).allSatisfy { abs($0 - $1) < 1e-9 })
    }

    @Test func keptAxesAndIdentityPlansAreUntouched() throws {
        let dims = [6, 5, 4]
        let v = try Volume3D(voxels: ProcessingFixtures.noise(120, seed: 3), dims: dims, spacing: [1, 2, 3])
        let same = try Resampling.resample(v, to: [nil, nil, nil], interpolation: .cubic)
        #expect(same.voxels == v.voxels && same.affine == v.affine)
        let onlyZ = try Resampling.resample(v, to: [nil, nil, 1.5])
        #expect(onlyZ.dims == [6, 5, 8] && onlyZ.spacing[0] == 1 && onlyZ.spacing[1] == 2)
        // x and y are untouched: each z line is resampled on its own.
        let lin = try Volume3D(voxels: (0..<120).map { Float($0 % 30) }, dims: dims, spacing: [1, 2, 3])
        let r = try Resampling.resample(lin, to: [nil, nil, 1.5])
        #expect(r.voxels.prefix(30) == lin.voxels.prefix(30))
    }

    @Test func constantVolumesStayConstant() throws {
        let v = try Volume3D(voxels: [Float](repeating: 42.5, count: 7 * 6 * 5), dims: [7, 6, 5])
        for kind in ImageInterpolation.allCases {
            let out = try Resampling.resample(v, plan: ResamplePlan(inputDims: [7, 6, 5], outputDims: [11, 4, 9]), interpolation: kind)
            #expect(out.voxels.allSatisfy { abs($0 - 42.5) < 1e-4 }, "\(kind)")
        }
    }

    @Test func resamplingBytesDoNotDependOnThreads() throws {
        let dims = [41, 33, 9]
        let v = try Volume3D(voxels: ProcessingFixtures.noise(dims.reduce(1, *), seed: 11), dims: dims, spacing: [0.9, 1.1, 3])
        var g = Brute.RNG(5)
        let labels = try Volume3D(voxels: Brute.labels(&g, dims: dims, nLabels: 4, blobs: true).map { UInt16($0) }, dims: dims, spacing: [0.9, 1.1, 3])
        let target: [Double?] = [1.3, 0.7, 1.25]
        for kind in ImageInterpolation.allCases {
            let ref = try Resampling.resample(v, to: target, interpolation: kind, threads: 1).voxels
            for t in [2, 3, 7] { #expect(try Resampling.resample(v, to: target, interpolation: kind, threads: t).voxels == ref, "\(kind) \(t)") }
        }
        for method in LabelInterpolation.allCases {
            let ref = try Resampling.resample(labels, to: target, method: method, threads: 1).voxels
            for t in [2, 5] { #expect(try Resampling.resample(labels, to: target, method: method, threads: t).voxels == ref, "\(method) \(t)") }
        }
    }

    /// Not a timed assertion (benchmarks are scripts); prints the time of the brief's reference
    /// case so a release `swift test` run shows it.
    @Test func reportsResampleTimeFor256x256x80() throws {
        let dims = [256, 256, 80]
        let v = try Volume3D(voxels: ProcessingFixtures.noise(dims.reduce(1, *), seed: 1), dims: dims, spacing: [0.8, 0.8, 2.5])
        for kind in ImageInterpolation.allCases {
            let clock = ContinuousClock()
            var out: Volume3D<Float>?
            let d = try clock.measure { out = try Resampling.resample(v, to: [1, 1, 1], interpolation: kind) }
            #expect(out?.dims == [205, 205, 200])
            print("resample 256x256x80 -> 205x205x200 \(kind): \(d)")
        }
        var g = Brute.RNG(2)
        let lab = try Volume3D(voxels: (0..<v.voxels.count).map { _ in UInt16(g.int(4)) }, dims: dims, spacing: v.spacing)
        for method in LabelInterpolation.allCases {
            let clock = ContinuousClock()
            let d = try clock.measure { _ = try Resampling.resample(lab, to: [1, 1, 1], method: method) }
            print("resample labels 256x256x80 -> 205x205x200 \(method.rawValue): \(d)")
        }
        let lps = try Volume3D(voxels: v.voxels, dims: dims, spacing: v.spacing,
                               affine: Affine4(rowMajor: [-0.8, 0, 0, 0, 0, -0.8, 0, 0, 0, 0, 2.5, 0, 0, 0, 0, 1]))
        let d = try ContinuousClock().measure { _ = try Reorientation.reorient(lps) }
        print("reorient 256x256x80 LPS -> RAS: \(d)")
    }
}
