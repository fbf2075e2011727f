import Foundation
import MedprepCore
import Testing
@testable import MedprepProcessing

struct SlicingFixture: Decodable {
    struct Volume: Decodable { let dims: [Int], affine: [[Double]], data: [Double], spacing: [Double] }
    struct SliceCase: Decodable {
        let axis: String, index: Int, height: Int, width: Int, values: [Double]
        let world: Double?, position: Double?
    }
    struct RGBVolume: Decodable { let dims: [Int], channels: Int, data: [Double] }
    struct Shaping: Decodable {
        let h: Int, w: Int, th: Int, tw: Int, image: [Double], labels: [Int]
        let pad_or_crop_image: [Double], pad_or_crop_image_fill: [Double], pad_or_crop_labels: [Int]
        let resize_image: [Double], resize_labels: [Int]
        let fg_box: [Int], fg_image: [Double], fg_labels: [Int]
    }
    let volume: Volume, slices: [SliceCase], rgb_volume: RGBVolume, rgb_slices: [SliceCase], shaping: [Shaping]
}

/// Slicing (numpy indexing, nibabel affine maths) and slice shaping (np.pad, numpy bilinear
/// written from torch's formula).
@Suite struct SliceShapingTests {
    static let fixture: SlicingFixture = try! ProcessingFixtures.load("slicing.json")

    static func volume() throws -> Volume3D<Float> {
        let v = fixture.volume
        return try Volume3D(voxels: v.data.map(Float.init), dims: v.dims, spacing: v.spacing, affine: ProcessingFixtures.affine(v.affine))
    }

    // MARK: - slicing

    @Test func planeAxesFollowTheConvention() {
        #expect(Slicing.planeAxes(.z) == (rows: 1, columns: 0))
        #expect(Slicing.planeAxes(.y) == (rows: 2, columns: 0))
        #expect(Slicing.planeAxes(.x) == (rows: 2, columns: 1))
    }

    @Test func slicesMatchNumpyAndNibabel() throws {
        let v = try Self.volume()
        #expect(v.orientation == "RAS")
        for c in Self.fixture.slices {
            let axis = try #require(SliceAxis(rawValue: c.axis))
            let s = try Slicing.slice(v, axis: axis, index: c.index)
            #expect(s.height == c.height && s.width == c.width, "\(c.axis)\(c.index)")
            #expect(s.values == c.values.map(Float.init), "\(c.axis)\(c.index)")
            let info = Slicing.info(v, axis: axis, index: c.index)
            #expect(info.worldAxis == axis.index)
            #expect(abs(info.worldCoordinate - (c.world ?? .nan)) <= 1e-9, "\(c.axis)\(c.index) world")
            #expect(info.position == c.position)
            let p = Slicing.planeAxes(axis)
            #expect(info.rowSpacing == v.spacing[p.rows] && info.columnSpacing == v.spacing[p.columns])
        }
        #expect(try Slicing.slices(v, axis: .y).count == v.dims[1])
        #expect(throws: MedprepError.self) { try Slicing.slice(v, axis: .z, index: v.dims[2]) }
    }

    @Test func multiChannelSlicesArePlanar() throws {
        let r = Self.fixture.rgb_volume
        let v = try Volume3D(voxels: r.data.map(Float.init), dims: r.dims, channels: r.channels)
        for c in Self.fixture.rgb_slices {
            let s = try Slicing.slice(v, axis: try #require(SliceAxis(rawValue: c.axis)), index: c.index)
            #expect(s.channels == r.channels && s.height == c.height && s.width == c.width)
            #expect(s.values == c.values.map(Float.init), "\(c.axis)\(c.index)")
        }
    }

    @Test func aTwoDImageIsOneZSliceWithRowsY() throws {
        // dims [width 3, height 2]: x = column, y = row (docs/conventions.md).
        let v = try Volume3D(voxels: [Float]([0, 1, 2, 10, 11, 12]), dims: [3, 2])
        let s = try Slicing.slice(v, axis: .z, index: 0)
        #expect(s.height == 2 && s.width == 3 && s[1, 2] == 12 && s.values == v.voxels)
    }

    // MARK: - shaping (oracle: numpy)

    static func pair(_ c: SlicingFixture.Shaping) throws -> (Slice2D<Float>, Slice2D<UInt16>) {
        (try Slice2D(values: c.image.map(Float.init), channels: 2, height: c.h, width: c.w),
         try Slice2D(values: c.labels.map { UInt16($0) }, height: c.h, width: c.w))
    }

    @Test func padOrCropMatchesNumpy() throws {
        for c in Self.fixture.shaping {
            let (im, lab) = try Self.pair(c)
            let r = try SliceShaping.shape(image: im, labels: lab, height: c.th, width: c.tw, mode: .padOrCrop)
            #expect(r.image?.values == c.pad_or_crop_image.map(Float.init), "\(c.h)x\(c.w) -> \(c.th)x\(c.tw)")
            #expect(r.labels?.values == c.pad_or_crop_labels.map { UInt16($0) })
            #expect(r.image?.channels == 2 && r.image?.height == c.th && r.image?.width == c.tw)
            let filled = try SliceShaping.shape(image: im, labels: nil, height: c.th, width: c.tw, mode: .padOrCrop, imagePadValue: -1.5)
            #expect(filled.image?.values == c.pad_or_crop_image_fill.map(Float.init))
        }
    }

    @Test func resizeMatchesTorchFormula() throws {
        for c in Self.fixture.shaping {
            let (im, lab) = try Self.pair(c)
            let r = try SliceShaping.shape(image: im, labels: lab, height: c.th, width: c.tw, mode: .resize)
            let err = ProcessingFixtures.maxRelError(try #require(r.image).values, c.resize_image)
            #expect(err <= 1e-5, "\(c.h)x\(c.w) -> \(c.th)x\(c.tw): \(err)")
            #expect(r.labels?.values == c.resize_labels.map { UInt16($0) })
        }
    }

    @Test func cropToForegroundMatchesNumpy() throws {
        for c in Self.fixture.shaping {
            let (im, lab) = try Self.pair(c)
            let box = try #require(SliceShaping.foregroundBox(lab))
            #expect([box.rows.lowerBound, box.rows.upperBound, box.columns.lowerBound, box.columns.upperBound] == c.fg_box)
            let r = try SliceShaping.shape(image: im, labels: lab, height: c.th, width: c.tw, mode: .cropToForeground(margin: 1))
            #expect(r.image?.values == c.fg_image.map(Float.init), "\(c.h)x\(c.w)")
            #expect(r.labels?.values == c.fg_labels.map { UInt16($0) })
        }
    }

    @Test func padSplitsFloorBeforeAndCropUndoesPad() throws {
        let s = try Slice2D(values: [UInt16](1...6), height: 2, width: 3)
        let p = try SliceShaping.padOrCrop(s, height: 5, width: 6, value: 0)
        // rows: 3 added -> 1 above, 2 below; columns: 3 added -> 1 left, 2 right
        #expect(p[1, 1] == 1 && p[2, 3] == 6 && p[0, 1] == 0 && p[1, 0] == 0 && p[3, 1] == 0)
        #expect(try SliceShaping.padOrCrop(p, height: 2, width: 3, value: 0).values == s.values)
    }

    @Test func strictModesRefuseTheWrongDirection() throws {
        let s = try Slice2D(values: [Float](repeating: 1, count: 12), height: 3, width: 4)
        #expect(throws: MedprepError.self) { try SliceShaping.shape(image: s, labels: nil, height: 2, width: 8, mode: .pad) }
        #expect(throws: MedprepError.self) { try SliceShaping.shape(image: s, labels: nil, height: 4, width: 2, mode: .crop) }
        #expect(try SliceShaping.shape(image: s, labels: nil, height: 5, width: 4, mode: .pad).image?.height == 5)
        #expect(try SliceShaping.shape(image: s, labels: nil, height: 2, width: 2, mode: .crop).image?.width == 2)
        let lab = try Slice2D(values: [UInt16](repeating: 0, count: 6), height: 2, width: 3)
        #expect(throws: MedprepError.self) { try SliceShaping.shape(image: s, labels: lab, height: 3, width: 3, mode: .padOrCrop) }
    }

    @Test func caseForegroundBoxProjectsOnEachSlicePlane() throws {
        var g = Brute.RNG(21)
        let dims = [13, 9, 7]
        var lab = [UInt16](repeating: 0, count: dims.reduce(1, *))
        for _ in 0..<5 { lab[g.int(lab.count)] = UInt16(1 + g.int(3)) }
        let v = try Volume3D(voxels: lab, dims: dims)
        let box = try #require(SliceShaping.foregroundBox(v))
        // brute force
        var lo = [Int.max, Int.max, Int.max], hi = [-1, -1, -1]
        for i in lab.indices where lab[i] > 0 {
            let p = [i % 13, (i / 13) % 9, i / 117]
            for a in 0..<3 { lo[a] = min(lo[a], p[a]); hi[a] = max(hi[a], p[a]) }
        }
        #expect(box.ranges == (0..<3).map { lo[$0]..<(hi[$0] + 1) })
        #expect(box.inPlane(.z) == Box2D(rows: box.ranges[1], columns: box.ranges[0]))
        #expect(box.inPlane(.x) == Box2D(rows: box.ranges[2], columns: box.ranges[1]))
        #expect(SliceShaping.foregroundBox(try Volume3D(voxels: [UInt16](repeating: 0, count: 8), dims: [2, 2, 2])) == nil)
        // An empty slice with the case box still crops to the case box.
        let empty = try Slice2D(values: [UInt16](repeating: 0, count: 9 * 13), height: 9, width: 13)
        let r = try SliceShaping.shape(image: nil, labels: empty, height: 4, width: 4, mode: .cropToForeground(margin: 0),
                                       foreground: box.inPlane(.z))
        #expect(r.labels?.height == 4)
    }

    @Test func labelResizeNeverInventsValues() throws {
        var g = Brute.RNG(4)
        let s = try Slice2D(values: (0..<(17 * 11)).map { _ in UInt16([0, 3, 7][g.int(3)]) }, height: 17, width: 11)
        for (h, w) in [(5, 30), (40, 3), (17, 11), (1, 1)] {
            let r = try SliceShaping.resize(labels: s, height: h, width: w)
            #expect(Set(r.values).isSubset(of: [0, 3, 7]) && r.values.count == h * w)
        }
    }
}
