import Testing
@testable import MedprepCore

@Suite struct SHA256Tests {
    // FIPS 180-2 appendix B vectors (also what Python's hashlib.sha256 gives).
    @Test func knownVectors() {
        #expect(SHA256.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func portableStreamingEqualsOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for split in [0, 1, 63, 64, 65, 500, 999] {
            var h = SHA256()
            h.update(data[..<split])
            h.update(data[split...])
            #expect(h.finalizeHex() == SHA256.hex(data))
        }
    }
}

@Suite struct OrientationTests {
    func affine(_ rot: [[Double]]) -> Affine4 {
        Affine4(rowMajor: rot[0] + [0] + rot[1] + [0] + rot[2] + [0] + [0, 0, 0, 1])
    }

    // Hand-derived: a column's dominant world axis and sign name the voxel axis.
    @Test func axisCodes() {
        #expect(Orientation.code(.identity) == "RAS")
        #expect(Orientation.code(affine([[-1, 0, 0], [0, -1, 0], [0, 0, 1]])) == "LPS")
        #expect(Orientation.code(affine([[0, 0, -2], [-3, 0, 0], [0, 1, 0]])) == "PSL")
        // 20 degrees oblique about z still reads as RAS.
        let c = 0.9396926207859084, s = 0.3420201433256687
        #expect(Orientation.code(affine([[c, -s, 0], [s, c, 0], [0, 0, 1]])) == "RAS")
    }
}

@Suite struct StatsTests {
    func image(_ v: VoxelBuffer, scaling: IntensityScaling? = nil) -> MedicalImage {
        var m = MedicalImage(format: .nifti1, dims: [v.count, 1, 1], spacing: [1, 1, 1], affine: .identity,
                             affineSource: .pixdim, voxels: v)
        m.scaling = scaling
        return m
    }

    @Test func matchesHandComputation() {
        let s = Moments.of(image(.float64([1.0, 2, 3, 4, .nan, .infinity])))
        #expect(s.count == 4 && s.nonFinite == 2)
        #expect(s.min == 1 && s.max == 4 && s.mean == 2.5)
        #expect(abs(s.std - 1.118033988749895) < 1e-12)  // sqrt(1.25)
        // Scaled integers: 2 * [1, 2, 3, 4] + 1.
        let t = Moments.of(image(.int16([1, 2, 3, 4]), scaling: IntensityScaling(slope: 2, intercept: 1)))
        #expect(t.min == 3 && t.max == 9 && t.mean == 6 && abs(t.std - 2 * 1.118033988749895) < 1e-12)
    }

    @Test func sameForAnyThreadCountAndAsTheFloatPath() throws {
        // More than one 65536-value block, values far from zero (CT-like).
        let values = (0..<200_000).map { Float(-1000 + Double(($0 * 7919) % 1000) / 7) }
        let one = Moments.of(image(.float32(values)), threads: 1)
        let many = Moments.of(image(.float32(values)), threads: 4)
        #expect(one == many)
        #expect(try Moments.of(values, threads: 3) == one)
        let d = values.map(Double.init)
        let mean = d.reduce(0, +) / Double(d.count)
        let std = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count)).squareRoot()
        #expect(abs(one.mean - mean) < 1e-9 && abs(one.std - std) < 1e-9)
    }
}

@Suite struct JSONTests {
    @Test func serialisesStably() {
        let j = JSON.object([("b", .int(1)), ("a", .array([.number(0.5), .null, .string("q\"\n")])), ("n", .number(.nan))])
        #expect(j.serialized() == #"{"b":1,"a":[0.5,null,"q\"\n"],"n":null}"#)
    }
}

@Suite struct HardwareSHA256Tests {
    /// The libcrypto-backed hasher agrees with the portable reference on many lengths and splits.
    @Test func matchesPortableReference() {
        var rng: UInt64 = 0x1234
        for len in [0, 1, 55, 56, 63, 64, 65, 1000, 70_000] {
            let data = (0..<len).map { _ -> UInt8 in rng = rng &* 6364136223846793005 &+ 1; return UInt8(rng >> 56) }
            var a = SHA256()
            a.update(data[..<(len / 3)])
            a.update(data[(len / 3)...])
            #expect(a.finalizeHex() == PortableSHA256.hex(data), "length \(len)")
        }
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

@Suite struct HistogramTests {
    /// The four-counter histogram against counting one value at a time, on runs (as masks have)
    /// and on lengths that are not a multiple of four.
    @Test(arguments: [0, 1, 3, 4, 7, 1001])
    func countsEveryValue(_ n: Int) {
        var state: UInt64 = 42
        var values = [UInt16]()
        while values.count < n {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let run = Int(state >> 60) + 1
            let v = UInt16(truncatingIfNeeded: state >> 33) % 7 == 0 ? UInt16.max : UInt16(truncatingIfNeeded: state >> 40) % 5
            values += [UInt16](repeating: v, count: min(run, n - values.count))
        }
        let got = values.withUnsafeBufferPointer { countOccurrences($0, bins: 65536) }
        var want = [Int](repeating: 0, count: 65536)
        for v in values { want[Int(v)] += 1 }
        #expect(got == want)
        #expect(got.reduce(0, +) == n)
    }
}

@Suite struct MapDistinctTests {
    /// Runs of equal values, negatives, both ends of the small types, and (for floats) NaN.
    static let values: [Double] = [0, 0, 0, 3, 3, -2, 7, 7, 7, 0, 127, -128, 3, 0, 0]

    static var buffers: [VoxelBuffer] {
        let v = values
        return [.uint8(v.map { UInt8(bitPattern: Int8($0)) }), .int8(v.map { Int8($0) }), .int16(v.map { Int16($0) * 200 }),
                .uint16(v.map { UInt16(bitPattern: Int16($0)) }), .int32(v.map { Int32($0) * 70_000 }),
                .uint32(v.map { UInt32(bitPattern: Int32($0)) }), .int64(v.map { Int64($0) << 40 }), .uint64(v.map { UInt64(bitPattern: Int64($0)) }),
                .float32(v.map { $0 == 7 ? .nan : Float($0) + 0.5 }), .float64(v.map { $0 == 7 ? .nan : $0 / 3 })]
    }

    /// Oracle: f applied to every element through the slow per-element accessor.
    @Test(arguments: buffers)
    func sameAsOneCallPerElement(_ buffer: VoxelBuffer) {
        var calls = 0
        func f(_ d: Double) -> Double { calls += 1; return d.isNaN ? .infinity : d * 6 }
        var out = [Double](repeating: 99, count: buffer.count - 2)  // a prefix (frame 0 of a longer buffer)
        out.withUnsafeMutableBufferPointer { buffer.mapDistinct(into: $0, f) }
        #expect(out == (0..<out.count).map { i in let d = buffer.double(at: i); return d.isNaN ? .infinity : d * 6 })
        // 8/16-bit types: once per distinct value; others: once per run (NaN never reused).
        let prefix = (0..<out.count).map { buffer.double(at: $0) }
        let runs = zip(prefix, [Double.nan] + prefix).filter { !($0 == $1) }.count
        #expect(calls == ([.uint8, .int8, .int16, .uint16].contains(buffer.type) ? Set(prefix).count : runs), "\(buffer.type)")
    }
}
