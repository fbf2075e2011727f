import Foundation
import MedprepCore
import Testing
@testable import MedprepProcessing

struct IntensityFixture: Decodable {
    struct ZOut: Decodable { let mean: Double, std: Double, out: [Double]; let out_zero_outside: [Double]? }
    struct ZScore: Decodable {
        struct Constant: Decodable { let values: [Double], out: [Double] }
        let values: [Double], mask: [Bool], all: ZOut, masked: ZOut, constant: Constant
    }
    struct CT: Decodable {
        let samples: [Double], lower: Double, upper: Double, mean: Double, std: Double, image: [Double], out: [Double]
    }
    struct Pct: Decodable { let values: [Double], q: [Double], out: [Double] }
    struct MinMax: Decodable { let values: [Double], out: [Double] }
    struct RGB: Decodable { let bytes: [Int], channels: Int, unit: [Double], mean: [Double], std: [Double], standardised: [Double] }
    let zscore: ZScore, ct: CT, percentile: [Pct], minmax: MinMax, rgb8: RGB
}

/// Intensity normalisation against numpy (float64 arithmetic, cast to float32).
@Suite struct IntensityTests {
    static let fixture: IntensityFixture = try! ProcessingFixtures.load("intensity.json")

    /// Float results may differ from numpy's by an ulp where the double mean is summed in another
    /// order (numpy sums pairwise); 1e-6 relative covers that and nothing more.
    func close(_ a: [Float], _ b: [Double], _ tol: Double = 1e-6) -> Bool {
        a.count == b.count && ProcessingFixtures.maxRelError(a, b) <= tol
    }

    @Test func zScoreOverAllVoxels() throws {
        let z = Self.fixture.zscore
        let x = z.values.map(Float.init)
        let m = try Moments.of(x)
        #expect(abs(m.mean - z.all.mean) <= 1e-12 * abs(z.all.mean))
        #expect(abs(m.std - z.all.std) <= 1e-12 * z.all.std)
        #expect(close(try IntensityNormalization.zScore(x), z.all.out))
    }

    @Test func zScoreInsideMask() throws {
        let z = Self.fixture.zscore
        let x = z.values.map(Float.init)
        let m = try Moments.of(x, mask: z.mask)
        #expect(m.count == z.mask.filter { $0 }.count)
        #expect(abs(m.mean - z.masked.mean) <= 1e-12 * abs(z.masked.mean))
        #expect(close(try IntensityNormalization.zScore(x, mask: z.mask), z.masked.out))
        let zeroed = try IntensityNormalization.zScore(x, mask: z.mask, zeroOutsideMask: true)
        #expect(close(zeroed, try #require(z.masked.out_zero_outside)))
    }

    @Test func constantImageUsesTheStdFloor() throws {
        let c = Self.fixture.zscore.constant
        let out = try IntensityNormalization.zScore(c.values.map(Float.init))
        #expect(out == c.out.map(Float.init))
        #expect(out.allSatisfy { $0 == 0 })
    }

    @Test func zScoreSkipsNonFiniteInStatistics() throws {
        let out = try IntensityNormalization.zScore([1, 2, 3, .nan, .infinity])
        #expect(out[0] == Float(-1.0 / (2.0 / 3.0).squareRoot()))
        #expect(out[3].isNaN)
    }

    @Test func ctStatisticsMatchNumpy() throws {
        let c = Self.fixture.ct
        let s = try CTStatistics.compute(samples: c.samples.map(Float.init))
        #expect(s.lower == c.lower)   // numpy's linear percentile, bit for bit
        #expect(s.upper == c.upper)
        #expect(abs(s.mean - c.mean) <= 1e-12 * abs(c.mean))
        #expect(abs(s.std - c.std) <= 1e-12 * c.std)
        #expect(s.count == c.samples.count)
        let stats = CTStatistics(lower: c.lower, upper: c.upper, mean: c.mean, std: c.std)
        #expect(close(IntensityNormalization.ct(c.image.map(Float.init), statistics: stats), c.out))
    }

    @Test func percentilesMatchNumpyExactly() {
        for p in Self.fixture.percentile {
            let got = Percentile.linear(p.values, p.q)
            #expect(got == p.out, "n=\(p.values.count)")
        }
    }

    @Test func minMaxMatchesNumpy() throws {
        let m = Self.fixture.minmax
        let out = try IntensityNormalization.minMax(m.values.map(Float.init))
        #expect(close(out, m.out))
        #expect(out.min() == 0 && out.max() == 1)
        #expect(try IntensityNormalization.minMax([3, 3, 3]) == [0, 0, 0])
    }

    @Test func rgb8MatchesNumpyExactly() throws {
        let r = Self.fixture.rgb8
        let bytes = r.bytes.map { UInt8($0) }
        #expect(try IntensityNormalization.rgb8(bytes, channels: r.channels) == r.unit.map(Float.init))
        let st = try IntensityNormalization.rgb8(bytes, channels: r.channels, mean: r.mean.map(Float.init), std: r.std.map(Float.init))
        #expect(st == r.standardised.map(Float.init))
        let image = MedicalImage(format: .png, dims: [6, 5], spacing: [1, 1], channels: 3, affine: .identity,
                                 affineSource: .image2D, voxels: .uint8(bytes))
        let vol = try IntensityNormalization.rgb8(image)
        #expect(vol.dims == [6, 5, 1] && vol.channels == 3 && vol.voxels == r.unit.map(Float.init))
        #expect(throws: MedprepError.self) { try IntensityNormalization.rgb8([1, 2], channels: 3) }
        #expect(throws: MedprepError.self) { try IntensityNormalization.rgb8([1, 2, 3], channels: 3, std: [1, 0, 1]) }
    }

    @Test func foregroundSamplesAreTheLabelledVoxelsInOrder() throws {
        let image: [Float] = (0..<20).map(Float.init)
        let labels: [UInt16] = (0..<20).map { $0 % 3 == 0 ? 0 : UInt16($0 % 3) }
        let all = try IntensityNormalization.foregroundSamples(image: image, labels: labels)
        #expect(all == image.enumerated().filter { labels[$0.offset] > 0 }.map(\.element))
        let few = try IntensityNormalization.foregroundSamples(image: image, labels: labels, maxSamples: 5)
        #expect(few == stride(from: 0, to: all.count, by: 3).map { all[$0] })   // 13 samples, k = 3
        #expect(throws: MedprepError.self) { try IntensityNormalization.foregroundSamples(image: image, labels: []) }
    }

    @Test func errorsNameTheProblem() {
        #expect(throws: MedprepError.self) { try IntensityNormalization.zScore([1, 2], mask: [true]) }
        #expect(throws: MedprepError.self) { try IntensityNormalization.zScore([1, 2], mask: [false, false]) }
        #expect(throws: MedprepError.self) { try CTStatistics.compute(samples: []) }
    }

    @Test func resultsDoNotDependOnThreads() throws {
        let x = ProcessingFixtures.noise(300_001, seed: 9)
        let mask = (0..<x.count).map { $0 % 7 != 0 }
        let ref = try IntensityNormalization.zScore(x, mask: mask, threads: 1)
        let refM = try IntensityNormalization.minMax(x, threads: 1)
        for t in [2, 3, 8] {
            #expect(try IntensityNormalization.zScore(x, mask: mask, threads: t) == ref)
            #expect(try IntensityNormalization.minMax(x, threads: t) == refM)
            #expect(try Moments.of(x, threads: t) == Moments.of(x, threads: 1))
        }
    }
}
