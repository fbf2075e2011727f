import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepIO

/// NIfTI reading checked against nibabel (expected.json written by tools/fixtures/make_nifti_fixtures.py).
@Suite struct NIfTIFixtureTests {
    static let expected = (try? Fixtures.expected("nifti")) ?? [:]

    @Test func fixturesArePresent() {
        #expect(Self.expected.count >= 30, "run tools/fixtures/make_nifti_fixtures.py")
    }

    @Test(arguments: expected.keys.sorted())
    func matchesNibabel(_ name: String) throws {
        let e = try #require(Self.expected[name])
        let image = try NIfTIReader.read(path: Fixtures.path("nifti/\(name)"))
        #expect(image.format.rawValue == e.format)
        #expect(image.dims == e.dims)
        #expect(image.sourceDatatype == e.datatype)
        #expect(image.channels == e.channels)
        if let sp = e.spacing { #expect(zip(image.spacing, sp).allSatisfy { abs($0 - $1) < 1e-6 } && image.spacing.count == sp.count) }
        if let aff = e.affine {
            let want = Affine4(rowMajor: aff.flatMap { $0 })
            #expect(image.affine.maxAbsDifference(want) < 1e-5, "affine \(image.affine.rows) vs \(aff)")
        }
        #expect(image.affineSource.rawValue == e.affine_source)
        #expect(image.orientation == e.orientation)
        if e.datatype != "rgb24" {  // RGB is never scaled (nibabel cannot scale structured RGB either)
            #expect(image.scaling?.slope == e.scl_slope && image.scaling?.intercept == e.scl_inter)
        }
        #expect(image.voxels.rawSHA256 == e.raw_sha256)
        let stats = Moments.of(image)
        #expect(Fixtures.relClose(stats.min, e.stats.min) && Fixtures.relClose(stats.max, e.stats.max))
        #expect(Fixtures.relClose(stats.mean, e.stats.mean) && Fixtures.relClose(stats.std, e.stats.std))
        for s in e.samples {
            let got = image.scaled(image.voxels.double(at: Int(s[0])))
            #expect(got == s[1] || Fixtures.relClose(got, s[1], rel: 1e-12), "sample \(Int(s[0]))")
        }
    }

    /// The fused read-to-float32 path (mmap, chunked swap and scaling, gzip) gives exactly the
    /// stored path's scaled values, which the test above checks against nibabel.
    @Test(arguments: expected.keys.sorted())
    func fusedFloatReadMatchesStoredPath(_ name: String) throws {
        let path = Fixtures.path("nifti/\(name)")
        let stored = try NIfTIReader.read(path: path)
        guard stored.channels == 1 else { return }
        let fused = try NIfTIReader.read(path: path, as: .scaledFloat32)
        guard case .float32(let got) = fused.voxels else { Issue.record("\(name): not float32"); return }
        let want = stored.scaledFloats()
        #expect(got.count == want.count)
        #expect(zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }, "\(name)")
        #expect(fused.scaling == nil)
    }

    @Test func fourDimensionalFramesAreReachable() throws {
        guard let (name, e) = Self.expected.first(where: { $0.value.dims.count == 4 }) else { return }
        let image = try NIfTIReader.read(path: Fixtures.path("nifti/\(name)"))
        #expect(image.frameCount == e.dims[3])
        let per = e.dims[0] * e.dims[1] * e.dims[2]
        let last = try image.frame(e.dims[3] - 1)
        #expect(last.dims == Array(e.dims.prefix(3)))
        #expect(last.voxels.double(at: 0) == image.voxels.double(at: per * (e.dims[3] - 1)))
        #expect(throws: MedprepError.self) { try image.frame(e.dims[3]) }
    }
}

/// Hostile files: each must give a MedprepError with the expected code, never a crash.
@Suite struct NIfTIHostileTests {
    struct ExpectedError: Decodable { let code: String; let also_ok: [String]? }
    static let expected: [String: ExpectedError] = {
        guard let data = try? Data(contentsOf: Fixtures.root.appendingPathComponent("hostile/expected_errors.json")),
              let decoded = try? JSONDecoder().decode([String: ExpectedError].self, from: data) else { return [:] }
        return decoded
    }()

    @Test(arguments: expected.keys.sorted())
    func hostileFileIsRejected(_ name: String) throws {
        let e = try #require(Self.expected[name])
        do {
            _ = try NIfTIReader.read(path: Fixtures.path("hostile/\(name)"))
            Issue.record("\(name) was accepted")
        } catch let error as MedprepError {
            #expect(error.code.rawValue == e.code || (e.also_ok ?? []).contains(error.code.rawValue), "\(name): \(error)")
            #expect(error.path != nil && !error.message.isEmpty)
        }
    }
}

/// Corruption generated in memory: every truncation and header byte flip of small files.
@Suite struct NIfTICorruptionTests {
    static func sampleImage() -> MedicalImage {
        let values: [Int16] = (0..<210).map { (i: Int) -> Int16 in Int16(i * 3 - 200) }
        var aff = Affine4.identity
        aff[0, 0] = -1.5; aff[1, 1] = 2; aff[2, 2] = 3; aff[0, 3] = 10
        return MedicalImage(format: .nifti1, dims: [7, 6, 5], spacing: [1.5, 2, 3], affine: aff,
                            affineSource: .sform, voxels: .int16(values))
    }

    static func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("medprep-test-\(getpid())-\(name)").path
    }

    @Test func everyTruncationIsAnError() throws {
        let bytes = try NIfTIWriter.encode(Self.sampleImage())
        let path = Self.tempPath("trunc.nii")
        defer { unlink(path) }
        for cut in 0..<bytes.count {
            try FileIO.writeAtomically(Array(bytes[..<cut]), to: path)
            #expect(throws: MedprepError.self, "cut at \(cut)") { try NIfTIReader.read(path: path) }
        }
    }

    @Test func everyGzipTruncationIsAnError() throws {
        let gz = try Gzip.compress(try NIfTIWriter.encode(Self.sampleImage()))
        let path = Self.tempPath("trunc.nii.gz")
        defer { unlink(path) }
        for cut in 0..<(gz.count - 8) {  // the last 8 bytes are CRC + size; deflate data ends before
            try FileIO.writeAtomically(Array(gz[..<cut]), to: path)
            #expect(throws: MedprepError.self, "cut at \(cut)") { try NIfTIReader.read(path: path) }
        }
    }

    /// `readHeader` inflates only the start of a .nii.gz; a gzip header with a long file name
    /// field (the deflate data starting past the first 64 KiB) still gives the header, and a file
    /// cut inside the NIfTI header is an error.
    @Test func gzipHeaderReadsFromTheStartOnly() throws {
        let raw = try NIfTIWriter.encode(Self.sampleImage())
        let plain = Self.tempPath("h.nii"), long = Self.tempPath("h-long.nii.gz"), cut = Self.tempPath("h-cut.nii.gz")
        defer { unlink(plain); unlink(long); unlink(cut) }
        try FileIO.writeAtomically(raw, to: plain)
        var gz = try Gzip.compress(raw)
        #expect(gz[3] & 0x08 == 0)
        gz[3] |= 0x08  // FNAME: a zero-terminated name follows the 10-byte gzip header
        gz.insert(contentsOf: [UInt8](repeating: 0x61, count: 100_000) + [0], at: 10)
        try FileIO.writeAtomically(gz, to: long)
        let (want, wantLayout) = try NIfTIReader.readHeader(path: plain)
        let (got, gotLayout) = try NIfTIReader.readHeader(path: long)
        #expect(got.pixdim == want.pixdim && got.dim == want.dim && gotLayout.dims == wantLayout.dims)
        #expect(try NIfTIReader.read(path: long).voxels == (try NIfTIReader.read(path: plain)).voxels)
        try FileIO.writeAtomically(Array(try Gzip.compress(raw)[..<40]), to: cut)
        #expect(throws: MedprepError.self) { try NIfTIReader.readHeader(path: cut) }
    }

    @Test func headerByteFlipsNeverCrash() throws {
        let bytes = try NIfTIWriter.encode(Self.sampleImage())
        let path = Self.tempPath("flip.nii")
        defer { unlink(path) }
        for offset in 0..<352 {
            for pattern: UInt8 in [0xff, 0x80, 0x7f] {
                var b = bytes
                b[offset] ^= pattern
                try FileIO.writeAtomically(b, to: path)
                do {
                    let img = try NIfTIReader.read(path: path)
                    #expect(img.voxels.count == img.voxelCount * img.channels)
                } catch is MedprepError {
                    // rejected with a message: fine
                }
            }
        }
    }

    @Test func hugeDimsInTinyGzipAreRejectedBeforeAllocating() throws {
        var b = try NIfTIWriter.encode(Self.sampleImage())
        for i in 0..<3 { b[42 + 2 * i] = 0xd0; b[43 + 2 * i] = 0x07 }  // 2000 x 2000 x 2000
        b[70] = 64; b[71] = 0  // float64: 64 GB claimed
        let path = Self.tempPath("huge.nii.gz")
        defer { unlink(path) }
        try FileIO.writeAtomically(try Gzip.compress(b), to: path)
        #expect { try NIfTIReader.read(path: path) } throws: { ($0 as? MedprepError)?.code == .tooLarge }
    }
}

/// Writer round trips: what we write reads back identically and keeps the affine in sform and qform.
@Suite struct NIfTIWriterTests {
    @Test(arguments: [false, true])
    func roundTripKeepsVoxelsAndAffine(_ gzip: Bool) throws {
        // Oblique affine with a reflection (det < 0) exercises qfac.
        let c = 0.8, s = 0.6
        let aff = Affine4(rowMajor: [-c * 1.2, s * 0.9, 0, 12.5, s * 1.2, c * 0.9, 0, -40, 0, 0, 2.5, 7, 0, 0, 0, 1])
        let f: [Float] = (0..<60).map { (i: Int) -> Float in Float(i) * 0.25 - 3 }
        let u: [UInt8] = (0..<60).map { (i: Int) -> UInt8 in UInt8(i) }
        let n: [Int16] = (0..<60).map { (i: Int) -> Int16 in Int16(i * -100) }
        for voxels: VoxelBuffer in [.float32(f), .uint8(u), .int16(n)] {
            let img = MedicalImage(format: .nifti1, dims: [5, 4, 3], spacing: [1.2, 0.9, 2.5], affine: aff,
                                   affineSource: .sform, voxels: voxels)
            let path = NIfTICorruptionTests.tempPath("rt.nii" + (gzip ? ".gz" : ""))
            defer { unlink(path) }
            try NIfTIWriter.write(img, to: path)
            let back = try NIfTIReader.read(path: path)
            #expect(back.voxels == voxels)
            #expect(back.dims == [5, 4, 3])
            #expect(back.affine.maxAbsDifference(aff) < 1e-5)
            // The qform alone must describe the same grid.
            let (h, _) = try NIfTIReader.readHeader(path: path)
            let q = try NIfTILayout.qformAffine(quatern: h.quatern, offset: h.qoffset, zooms: Array(h.pixdim[1...3]),
                                                qfac: h.pixdim[0], path: path)
            #expect(q.maxAbsDifference(aff) < 1e-5, "qform \(q.rows)")
        }
    }

    @Test func refusesToOverwriteWhenAsked() throws {
        let path = NIfTICorruptionTests.tempPath("keep.nii")
        defer { unlink(path) }
        try NIfTIWriter.write(NIfTICorruptionTests.sampleImage(), to: path)
        #expect(throws: MedprepError.self) { try NIfTIWriter.write(NIfTICorruptionTests.sampleImage(), to: path, overwrite: false) }
    }
}
