import MedprepCore
import Testing
@testable import MedprepProcessing

/// The transform itself against all-pairs brute force: 1D, 2D and 3D, isotropic and anisotropic.
@Suite struct DistanceTransformTests {
    static let cases: [(dims: [Int], spacing: [Double])] = [
        ([17], [1]), ([17], [0.35]),
        ([13, 9], [1, 1]), ([13, 9], [0.6, 2.5]), ([1, 11], [1, 3]), ([9, 1], [1.7, 1]),
        ([12, 10, 8], [1, 1, 1]), ([12, 10, 8], [0.8, 1.3, 3.1]), ([5, 1, 7], [2, 1, 0.5]),
    ]

    @Test(arguments: 0..<cases.count)
    func binaryEDTMatchesBruteForce(caseIndex: Int) throws {
        let (dims, spacing) = Self.cases[caseIndex]
        var rng = Brute.RNG(UInt64(100 + caseIndex))
        for blobs in [false, true] {
            let labels = Brute.labels(&rng, dims: dims, nLabels: 2, blobs: blobs)
            let mask = labels.map { $0 == 1 }
            guard mask.contains(false) else { continue }
            let got = try DistanceTransform.edt(mask: mask, dims: dims, spacing: spacing)
            let want = Brute.distanceTo({ !mask[$0] }, count: mask.count, dims: dims, spacing: spacing)
            let err = zip(got, want).map { abs($0 - $1) / max(1, $1) }.max()!
            #expect(err <= 1e-4, "dims \(dims) spacing \(spacing) blobs \(blobs): max rel error \(err)")
        }
    }

    @Test(arguments: 0..<cases.count)
    func multiLabelMatchesBruteForce(caseIndex: Int) throws {
        let (dims, spacing) = Self.cases[caseIndex]
        var rng = Brute.RNG(UInt64(200 + caseIndex))
        for blobs in [false, true] {
            let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: blobs)
            let got = try DistanceTransform.distanceToOtherLabel(labels: labels, dims: dims, spacing: spacing)
            let want = Brute.distanceToOther(labels, dims: dims, spacing: spacing)
            if want.allSatisfy({ $0 == .infinity }) {
                #expect(got.allSatisfy { $0 == .infinity })
                continue
            }
            #expect(Brute.maxRelError(got, want) <= 1e-4, "dims \(dims) spacing \(spacing) blobs \(blobs)")
        }
    }

    /// scipy: `distance_transform_edt(np.ones((2, 3)), sampling=(2, 0.5))` measures to (-1, 0).
    @Test func allForegroundUsesScipysVirtualVoxel() throws {
        let dims = [3, 2], spacing = [0.5, 2.0]  // x = 3 columns (spacing 0.5), y = 2 rows (spacing 2)
        let mask = [Bool](repeating: true, count: 6)
        // .last: scipy on the C-order array of shape (2, 3) with sampling (2, 0.5): virtual voxel at y = -1.
        let last = try DistanceTransform.edt(mask: mask, dims: dims, spacing: spacing, virtualVoxelAxis: .last)
        let wantLast = [0, 1, 2, 3, 4, 5].map { i -> Double in
            let x = Double(i % 3) * 0.5, y = Double(i / 3 + 1) * 2
            return (x * x + y * y).squareRoot()
        }
        #expect(zip(last, wantLast).allSatisfy { abs($0 - $1) < 1e-12 })
        // .first: scipy on the array of shape (3, 2) = dims with sampling (0.5, 2): virtual voxel at x = -1.
        let first = try DistanceTransform.edt(mask: mask, dims: dims, spacing: spacing, virtualVoxelAxis: .first)
        let wantFirst = [0, 1, 2, 3, 4, 5].map { i -> Double in
            let x = Double(i % 3 + 1) * 0.5, y = Double(i / 3) * 2
            return (x * x + y * y).squareRoot()
        }
        #expect(zip(first, wantFirst).allSatisfy { abs($0 - $1) < 1e-12 })
        // 1D: scipy gives 1, 2, 3, 4, 5.
        let line = try DistanceTransform.edt(mask: [Bool](repeating: true, count: 5), dims: [5])
        #expect(line == [1, 2, 3, 4, 5])
    }

    @Test func singleLabelGridIsInfinite() throws {
        let d = try DistanceTransform.distanceToOtherLabel(labels: [UInt8](repeating: 3, count: 12), dims: [4, 3])
        #expect(d.allSatisfy { $0 == .infinity })
    }

    @Test func badInputsAreErrors() {
        #expect(throws: MedprepError.self) { try DistanceTransform.edt(mask: [true, false], dims: [3]) }
        #expect(throws: MedprepError.self) { try DistanceTransform.edt(mask: [true, false], dims: [2], spacing: [0]) }
        #expect(throws: MedprepError.self) { try DistanceTransform.edt(mask: [true, false], dims: [2], spacing: [.nan]) }
        #expect(throws: MedprepError.self) { try DistanceTransform.edt(mask: [], dims: [0]) }
        #expect(throws: MedprepError.self) { try DistanceTransform.edt(mask: [true], dims: [1, 1, 1, 1]) }
    }

    /// Same input, same bytes, whatever the thread count (lines are independent; tiles fixed by index).
    @Test func outputDoesNotDependOnThreadCount() throws {
        var rng = Brute.RNG(7)
        let dims = [37, 29, 11], spacing = [0.7, 1.1, 2.3]
        let labels = Brute.labels(&rng, dims: dims, nLabels: 4, blobs: true)
        let one = try DistanceTransform.distanceToOtherLabel(labels: labels, dims: dims, spacing: spacing, threads: 1)
        for t in [2, 3, 8] {
            let many = try DistanceTransform.distanceToOtherLabel(labels: labels, dims: dims, spacing: spacing, threads: t)
            #expect(one.map(\.bitPattern) == many.map(\.bitPattern), "threads \(t)")
        }
    }
}
