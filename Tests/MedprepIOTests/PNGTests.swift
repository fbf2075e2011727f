import Foundation
import MedprepCore
import Testing

@testable import MedprepIO

/// Shared checks for the 2D fixtures (PNG and JPEG): the oracle is expected.json, written by
/// tools/fixtures/make_image_fixtures.py from Pillow (pypng's arrays for 16-bit colour).
enum Image2DOracle {
    /// The fields of expected.json that FixtureSupport.Expected does not decode.
    struct Extra: Decodable { let palette: [Int]? }

    static func extras(_ folder: String) throws -> [String: Extra] {
        let data = try Data(contentsOf: Fixtures.root.appendingPathComponent(folder).appendingPathComponent("expected.json"))
        return try JSONDecoder().decode([String: Extra].self, from: data)
    }

    static func names(_ folder: String) -> [String] {
        ((try? Fixtures.expected(folder)) ?? [:]).keys.sorted()
    }

    /// One entry of hostile/expected_errors.json (the format the NIfTI fixtures use too).
    struct HostileSpec: Decodable { let code: String; let also_ok: [String]; let why: String }

    /// Error code expected for each file of `folder/hostile` (ours is always `code`).
    static func hostile(_ folder: String) -> [String: String] {
        let url = Fixtures.root.appendingPathComponent(folder).appendingPathComponent("hostile/expected_errors.json")
        guard let data = try? Data(contentsOf: url),
              let specs = try? JSONDecoder().decode([String: HostileSpec].self, from: data) else { return [:] }
        return specs.mapValues(\.code)
    }

    static func compare(_ image: MedicalImage, _ e: Fixtures.Expected, name: String) {
        #expect(image.dims == e.dims, "\(name): dims")
        #expect(image.channels == e.channels, "\(name): channels")
        #expect(image.voxels.type.rawValue == e.datatype, "\(name): datatype")
        #expect(image.sourceDatatype.hasPrefix(e.datatype), "\(name): sourceDatatype '\(image.sourceDatatype)'")
        #expect(image.spacing == [1, 1], "\(name): spacing")
        #expect(image.affine == .identity, "\(name): affine")
        #expect(image.affineSource == .image2D, "\(name): affine source")
        #expect(image.voxels.count == e.dims[0] * e.dims[1] * e.channels, "\(name): voxel count")
        #expect(image.voxels.rawSHA256 == e.raw_sha256, "\(name): raw sha256 differs from the Pillow/pypng oracle")
        for s in e.samples {
            let i = Int(s[0])
            guard i < image.voxels.count else { Issue.record("\(name): sample index \(i) out of range"); continue }
            #expect(image.voxels.double(at: i) == s[1], "\(name): sample at \(i)")
        }
        let st = Moments.of(image)
        #expect(Fixtures.relClose(st.min, e.stats.min), "\(name): min")
        #expect(Fixtures.relClose(st.max, e.stats.max), "\(name): max")
        #expect(Fixtures.relClose(st.mean, e.stats.mean), "\(name): mean")
        #expect(Fixtures.relClose(st.std, e.stats.std), "\(name): std")
    }

    /// Runs `body`, which must throw a MedprepError (never crash, never succeed).
    static func expectMedprepError(_ what: String, _ body: () throws -> Void) -> MedprepError? {
        do {
            try body()
            Issue.record("\(what): decoded without error")
            return nil
        } catch let e as MedprepError {
            return e
        } catch {
            Issue.record("\(what): threw a non-MedprepError \(error)")
            return nil
        }
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }
}

@Suite struct PNGTests {
    static let folder = "png"

    @Test func fixturesArePresent() throws {
        let expected = try Fixtures.expected(Self.folder)
        #expect(expected.count >= 28)
        #expect(Image2DOracle.hostile(Self.folder).count >= 15)
    }

    @Test(arguments: Image2DOracle.names("png"))
    func decodesLikePillow(name: String) throws {
        let e = try #require(try Fixtures.expected(Self.folder)[name])
        let path = Fixtures.path("\(Self.folder)/\(name)")
        let bytes = try FileIO.readAll(path)
        #expect(FileIO.sha256(of: bytes) == e.file_sha256, "\(name): fixture file changed")
        let image = try PNGCodec.read(path: path)
        #expect(image.format == .png)
        Image2DOracle.compare(image, e, name: name)
        let extra = try Image2DOracle.extras(Self.folder)[name]
        if let palette = extra?.palette {
            #expect(image.palette.map { $0.map(Int.init) } == palette, "\(name): palette")
            #expect(image.sourceDatatype.contains("palette"))
        } else {
            #expect(image.palette == nil, "\(name): no palette expected")
        }
    }

    @Test func lowBitGreyIsScaledLikePillow() throws {
        let one = try PNGCodec.read(path: Fixtures.path("png/grey1.png"))
        #expect(one.sourceDatatype == "uint8 (1-bit)")
        guard case .uint8(let v1) = one.voxels else { Issue.record("grey1 not uint8"); return }
        #expect(Set(v1).isSubset(of: [0, 255]))
        let two = try PNGCodec.read(path: Fixtures.path("png/grey2.png"))
        guard case .uint8(let v2) = two.voxels else { Issue.record("grey2 not uint8"); return }
        #expect(Set(v2).isSubset(of: [0, 85, 170, 255]))
        let four = try PNGCodec.read(path: Fixtures.path("png/grey4.png"))
        guard case .uint8(let v4) = four.voxels else { Issue.record("grey4 not uint8"); return }
        #expect(v4.allSatisfy { $0 % 17 == 0 })
        let pal = try PNGCodec.read(path: Fixtures.path("png/palette2.png"))
        guard case .uint8(let p2) = pal.voxels else { Issue.record("palette2 not uint8"); return }
        #expect(p2.allSatisfy { $0 < 4 }, "palette indices are not scaled")
        #expect(pal.sourceDatatype == "uint8 palette (2-bit)")
    }

    @Test func sixteenBitStaysSixteenBit() throws {
        for name in ["grey16.png", "grey_alpha16.png", "rgb16.png", "rgba16.png", "interlaced_grey16.png"] {
            let image = try PNGCodec.read(path: Fixtures.path("png/\(name)"))
            #expect(image.voxels.type == .uint16, "\(name)")
            #expect(image.sourceDatatype == "uint16", "\(name)")
        }
        let g = try PNGCodec.read(path: Fixtures.path("png/grey16.png"))
        #expect(g.voxels.double(at: 0) == 0 && g.voxels.double(at: 1) == 65535)
    }

    @Test func transparencyAddsNoChannel() throws {
        for (name, channels) in [("trns_grey8.png", 1), ("trns_grey2.png", 1), ("trns_rgb8.png", 3), ("trns_palette4.png", 1)] {
            let image = try PNGCodec.read(path: Fixtures.path("png/\(name)"))
            #expect(image.channels == channels, "\(name)")
        }
    }

    // MARK: hostile input

    @Test(arguments: Image2DOracle.hostile("png").keys.sorted())
    func hostileFileFails(name: String) throws {
        let code = try #require(Image2DOracle.hostile(Self.folder)[name])
        let path = Fixtures.path("png/hostile/\(name)")
        let e = Image2DOracle.expectMedprepError(name) { _ = try PNGCodec.read(path: path) }
        #expect(e?.code.rawValue == code, "\(name): \(e?.description ?? "no error")")
        #expect(e?.path == path)
        #expect(e?.message.hasSuffix(".") == true)
    }

    @Test(arguments: ["grey1.png", "rgb8.png", "interlaced_palette4.png", "rgba16.png", "trns_palette4.png"])
    func everyTruncationFails(name: String) throws {
        let bytes = try FileIO.readAll(Fixtures.path("png/\(name)"))
        var codes: [MedprepError.Code: Int] = [:]
        for n in 0..<bytes.count {
            let e = Image2DOracle.expectMedprepError("\(name)[0..<\(n)]") {
                _ = try PNGCodec.decode(Array(bytes[0..<n]), path: "cut.png")
            }
            if let e { codes[e.code, default: 0] += 1 }
            #expect(e?.code == .truncated, "\(name) cut at \(n): \(e?.description ?? "")")
            #expect(e?.path == "cut.png")
        }
        #expect(codes[.truncated] == bytes.count)
    }

    @Test(arguments: ["grey4.png", "rgb8.png", "interlaced_grey16.png"])
    func everyFlippedByteFails(name: String) throws {
        // Every chunk is CRC-checked (Pillow does the same) and the signature is exact, so no
        // single damaged byte may slip through.
        let bytes = try FileIO.readAll(Fixtures.path("png/\(name)"))
        for i in 0..<bytes.count {
            for mask: UInt8 in [0xFF, 0x01] {
                var b = bytes
                b[i] ^= mask
                _ = Image2DOracle.expectMedprepError("\(name) byte \(i) ^ \(mask)") {
                    _ = try PNGCodec.decode(b, path: "flip.png")
                }
            }
        }
    }

    /// Rewrites IHDR's width and height and fixes the CRC, so only the size guards can object.
    static func withIHDR(_ bytes: [UInt8], width: UInt32, height: UInt32) -> [UInt8] {
        var b = bytes
        // signature (8) + length (4) + "IHDR" (4): width at 16, height at 20, CRC at 29
        b.replaceSubrange(16..<20, with: Image2DOracle.bigEndian(width))
        b.replaceSubrange(20..<24, with: Image2DOracle.bigEndian(height))
        b.replaceSubrange(29..<33, with: Image2DOracle.bigEndian(Image2DOracle.crc32(b[12..<29])))
        return b
    }

    @Test func hugeHeaderIsRefusedBeforeAllocating() throws {
        let bytes = try FileIO.readAll(Fixtures.path("png/rgba8.png"))
        for (w, h) in [(UInt32(100_000), UInt32(100_000)), (65535, 65535), (20000, 20000), (1 << 20, 2048)] {
            let e = Image2DOracle.expectMedprepError("IHDR \(w)x\(h)") {
                _ = try PNGCodec.decode(Self.withIHDR(bytes, width: w, height: h), path: "huge.png")
            }
            #expect(e?.code == .tooLarge, "\(w)x\(h): \(e?.description ?? "")")
            #expect(e?.message.contains("'\(w)x\(h)'") == true)
        }
        // beyond libpng's user limit (2^20 per side)
        let e = Image2DOracle.expectMedprepError("IHDR 2^21 wide") {
            _ = try PNGCodec.decode(Self.withIHDR(bytes, width: 1 << 21, height: 1), path: "wide.png")
        }
        #expect(e?.code == .corruptImage)
    }

    @Test func decodedSizeLimitIsHonoured() throws {
        let bytes = try FileIO.readAll(Fixtures.path("png/rgb8_64x48.png"))
        let e = Image2DOracle.expectMedprepError("limit") {
            _ = try PNGCodec.decode(bytes, path: "x.png", maxDecodedBytes: 64 * 48 * 3 - 1)
        }
        #expect(e?.code == .tooLarge)
        #expect(try PNGCodec.decode(bytes, path: "x.png", maxDecodedBytes: 64 * 48 * 3).dims == [64, 48])
    }

    @Test func missingFileNamesThePath() {
        let e = Image2DOracle.expectMedprepError("missing") { _ = try PNGCodec.read(path: "/nonexistent/x.png") }
        #expect(e?.code == .fileNotFound)
        #expect(e?.path == "/nonexistent/x.png")
    }

    // MARK: writing

    static func image(_ voxels: VoxelBuffer, width: Int, height: Int, channels: Int, palette: [UInt8]? = nil)
        -> MedicalImage
    {
        MedicalImage(format: .png, dims: [width, height], spacing: [1, 1], channels: channels, affine: .identity,
                     affineSource: .image2D, voxels: voxels, palette: palette)
    }

    /// IHDR fields of an encoded PNG, read straight from the bytes (not through our decoder).
    static func ihdr(_ b: [UInt8]) -> (width: Int, height: Int, bitDepth: Int, colorType: Int, interlace: Int) {
        func u32(_ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }
        return (u32(16), u32(20), Int(b[24]), Int(b[25]), Int(b[28]))
    }

    @Test(arguments: [8, 16], [1, 2, 3, 4])
    func roundTripsSyntheticImages(bits: Int, channels: Int) throws {
        let colorType = [0, 4, 2, 6][channels - 1]
        let (w, h) = (17, 5)
        let n = w * h * channels
        let voxels: VoxelBuffer = bits == 8
            ? .uint8((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
            : .uint16((0..<n).map { UInt16(truncatingIfNeeded: $0 &* 2459 &+ 7) })
        let original = Self.image(voxels, width: w, height: h, channels: channels)
        let bytes = try PNGCodec.encode(original)
        let header = Self.ihdr(bytes)
        #expect(bytes.starts(with: PNGCodec.signature))
        #expect(header.width == w && header.height == h && header.bitDepth == bits && header.colorType == colorType)
        #expect(header.interlace == 0)
        let back = try PNGCodec.decode(bytes, path: "rt.png")
        #expect(back.dims == [w, h])
        #expect(back.channels == channels)
        #expect(back.voxels == voxels)
        #expect(try PNGCodec.encode(back) == bytes, "encoding is deterministic")
    }

    /// Pillow-decoded fixtures, re-encoded by us and decoded again, still match Pillow's hash.
    @Test(arguments: ["grey8.png", "grey16.png", "grey_alpha8.png", "grey_alpha16.png", "rgb8.png", "rgb16.png",
                      "rgba8.png", "rgba16.png", "palette4.png", "palette8_pillow_mask.png", "interlaced_rgb8.png",
                      "grey1.png"])
    func reencodedFixtureStillMatchesOracle(name: String) throws {
        let e = try #require(try Fixtures.expected("png")[name])
        let image = try PNGCodec.read(path: Fixtures.path("png/\(name)"))
        let again = try PNGCodec.decode(try PNGCodec.encode(image), path: "re.png")
        #expect(again.voxels.rawSHA256 == e.raw_sha256)
        #expect(again.palette == image.palette)
        #expect(again.channels == e.channels)
    }

    @Test func paletteImagesAreWrittenAsPalettePNGs() throws {
        let palette: [UInt8] = [0, 0, 0, 255, 0, 0, 0, 255, 0]
        let labels: [UInt8] = [0, 1, 2, 1, 0, 2]
        let bytes = try PNGCodec.encode(Self.image(.uint8(labels), width: 3, height: 2, channels: 1, palette: palette))
        #expect(Self.ihdr(bytes).colorType == 3)
        let back = try PNGCodec.decode(bytes, path: "p.png")
        #expect(back.palette == palette)
        #expect(back.voxels == .uint8(labels))
        // an index outside the palette is refused
        let e = Image2DOracle.expectMedprepError("index 3 of 3") {
            _ = try PNGCodec.encode(Self.image(.uint8([0, 3]), width: 2, height: 1, channels: 1, palette: palette))
        }
        #expect(e?.code == .invalidArgument)
    }

    @Test func unsupportedImagesAreRefused() {
        let floats = Self.image(.float32([0, 1]), width: 2, height: 1, channels: 1)
        #expect(Image2DOracle.expectMedprepError("float32") { _ = try PNGCodec.encode(floats) }?.code == .unsupported)
        let five = Self.image(.uint8([UInt8](repeating: 0, count: 10)), width: 2, height: 1, channels: 5)
        #expect(Image2DOracle.expectMedprepError("5 channels") { _ = try PNGCodec.encode(five) }?.code == .unsupported)
        let volume = MedicalImage(format: .nifti1, dims: [2, 2, 2], spacing: [1, 1, 1], affine: .identity,
                                  affineSource: .pixdim, voxels: .uint8([UInt8](repeating: 0, count: 8)))
        #expect(Image2DOracle.expectMedprepError("3D") { _ = try PNGCodec.encode(volume) }?.code == .unsupported)
        let slice = MedicalImage(format: .nifti1, dims: [2, 2, 1], spacing: [1, 1, 1], affine: .identity,
                                 affineSource: .pixdim, voxels: .uint8([1, 2, 3, 4]))
        #expect((try? PNGCodec.decode(try PNGCodec.encode(slice), path: "s.png"))?.voxels == .uint8([1, 2, 3, 4]))
    }

    @Test func writeIsAtomicAndRespectsOverwrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-png-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.png").path
        let image = Self.image(.uint16([1, 2, 3, 65535]), width: 2, height: 2, channels: 1)
        try PNGCodec.write(image, to: path)
        #expect(try PNGCodec.read(path: path).voxels == image.voxels)
        let e = Image2DOracle.expectMedprepError("no overwrite") { try PNGCodec.write(image, to: path, overwrite: false) }
        #expect(e?.path == path)
        try PNGCodec.write(image, to: path, overwrite: true)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(leftovers == ["out.png"])
        let bad = Image2DOracle.expectMedprepError("float write") {
            try PNGCodec.write(Self.image(.float64([0]), width: 1, height: 1, channels: 1), to: dir.appendingPathComponent("f.png").path)
        }
        #expect(bad?.path?.hasSuffix("f.png") == true)
    }
}
