import Foundation
import MedprepCore
import Testing

@testable import MedprepIO

@Suite struct JPEGTests {
    static let folder = "jpeg"

    @Test func fixturesArePresent() throws {
        #expect(try Fixtures.expected(Self.folder).count >= 13)
        #expect(Image2DOracle.hostile(Self.folder).count >= 15)
    }

    /// Pixels equal Pillow's (np.asarray(Image.open(f))) exactly: the raw sha256 and samples.
    /// Pillow bundles libjpeg-turbo 3.x and Debian links 2.1.5; both use the ISLOW IDCT and the
    /// same fancy upsampling, and the fixtures show no difference at all.
    @Test(arguments: Image2DOracle.names("jpeg"))
    func decodesLikePillow(name: String) throws {
        let e = try #require(try Fixtures.expected(Self.folder)[name])
        let path = Fixtures.path("\(Self.folder)/\(name)")
        #expect(FileIO.sha256(of: try FileIO.readAll(path)) == e.file_sha256, "\(name): fixture file changed")
        let image = try JPEGCodec.read(path: path)
        #expect(image.format == .jpeg)
        #expect(image.palette == nil)
        Image2DOracle.compare(image, e, name: name)
    }

    @Test func describesTheEncoding() throws {
        let cases: [(String, String)] = [
            ("grey.jpg", "uint8"),
            ("rgb420.jpg", "uint8 YCbCr 4:2:0"),
            ("rgb422.jpg", "uint8 YCbCr 4:2:2"),
            ("rgb444.jpg", "uint8 YCbCr 4:4:4"),
            ("progressive_64x48.jpg", "uint8 YCbCr 4:2:0 progressive"),
            ("progressive_grey.jpg", "uint8 progressive"),
        ]
        for (name, want) in cases {
            #expect(try JPEGCodec.read(path: Fixtures.path("jpeg/\(name)")).sourceDatatype == want, "\(name)")
        }
    }

    @Test func exifOrientationIsNotApplied() throws {
        // Like Pillow's Image.open: the stored pixel grid is returned, 13 wide and 9 high.
        let image = try JPEGCodec.read(path: Fixtures.path("jpeg/exif_orientation6.jpg"))
        #expect(image.dims == [13, 9])
    }

    @Test func linksLibjpegTurbo() {
        #expect(JPEGCodec.libraryVersion >= 2_000_000)
    }

    // MARK: hostile input

    @Test(arguments: Image2DOracle.hostile("jpeg").keys.sorted())
    func hostileFileFails(name: String) throws {
        let code = try #require(Image2DOracle.hostile(Self.folder)[name])
        let path = Fixtures.path("jpeg/hostile/\(name)")
        let e = Image2DOracle.expectMedprepError(name) { _ = try JPEGCodec.read(path: path) }
        #expect(e?.code.rawValue == code, "\(name): \(e?.description ?? "no error")")
        #expect(e?.path == path)
        #expect(e?.message.hasSuffix(".") == true)
    }

    @Test(arguments: ["grey.jpg", "rgb420.jpg", "progressive_grey.jpg", "restart_64x48.jpg", "progressive_64x48.jpg"])
    func everyTruncationFails(name: String) throws {
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/\(name)"))
        // Every prefix for the small files, a stride for the larger ones (and always the last 64).
        let stride = bytes.count > 2000 ? 7 : 1
        var offsets = Array(Swift.stride(from: 0, to: bytes.count, by: stride))
        offsets += (max(0, bytes.count - 64)..<bytes.count)
        for n in Set(offsets).sorted() {
            let e = Image2DOracle.expectMedprepError("\(name)[0..<\(n)]") {
                _ = try JPEGCodec.decode(Array(bytes[0..<n]), path: "cut.jpg")
            }
            #expect(e?.code == .truncated, "\(name) cut at \(n): \(e?.description ?? "")")
            #expect(e?.path == "cut.jpg")
        }
    }

    @Test(arguments: ["grey.jpg", "rgb420.jpg", "progressive_grey.jpg"])
    func flippedBytesNeverCrash(name: String) throws {
        // Damaged entropy data can decode to wrong pixels without libjpeg noticing, so a flip
        // need not fail; it must either fail with a MedprepError or give an image of the header's
        // size. Flips in the headers and markers mostly fail.
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/\(name)"))
        var failures = 0
        for i in 0..<bytes.count {
            var b = bytes
            b[i] ^= 0xFF
            do {
                let image = try JPEGCodec.decode(b, path: "flip.jpg")
                #expect(image.voxels.count == image.dims[0] * image.dims[1] * image.channels)
                #expect(image.dims[0] <= 65535 && image.dims[1] <= 65535)
            } catch let e as MedprepError {
                failures += 1
                #expect(e.path == "flip.jpg")
            } catch {
                Issue.record("\(name) byte \(i): non-MedprepError \(error)")
            }
        }
        #expect(failures > 0)
    }

    /// Offset of the SOFn marker of a JPEG (walking the header segments).
    static func sofOffset(_ b: [UInt8]) -> Int? {
        var i = 2
        while i + 4 <= b.count, b[i] == 0xFF {
            let m = b[i + 1]
            if (0xC0...0xCF).contains(m) && m != 0xC4 && m != 0xC8 && m != 0xCC { return i }
            if m == 0xDA { return nil }
            i += 2 + (Int(b[i + 2]) << 8 | Int(b[i + 3]))
        }
        return nil
    }

    @Test func twelveBitAndLosslessAreUnsupported() throws {
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/rgb420.jpg"))
        let sof = try #require(Self.sofOffset(bytes))
        var p12 = bytes
        p12[sof + 4] = 12
        let e12 = Image2DOracle.expectMedprepError("12-bit") { _ = try JPEGCodec.decode(p12, path: "p12.jpg") }
        #expect(e12?.code == .unsupported)
        #expect(e12?.message.contains("12") == true)
        var sof3 = bytes
        sof3[sof + 1] = 0xC3
        #expect(Image2DOracle.expectMedprepError("SOF3") { _ = try JPEGCodec.decode(sof3, path: "l.jpg") }?.code == .unsupported)
        let cmyk = Image2DOracle.expectMedprepError("CMYK") {
            _ = try JPEGCodec.read(path: Fixtures.path("jpeg/hostile/cmyk.jpg"))
        }
        #expect(cmyk?.code == .unsupported)
        #expect(cmyk?.message.contains("CMYK") == true || cmyk?.message.contains("YCCK") == true)
    }

    @Test func hugeFrameHeaderIsRefusedBeforeAllocating() throws {
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/rgb420_64x48.jpg"))
        let sof = try #require(Self.sofOffset(bytes))
        for (w, h) in [(65000, 65000), (65500, 65500), (30000, 20000), (8000, 8000)] {
            var b = bytes
            b[sof + 5] = UInt8(h >> 8); b[sof + 6] = UInt8(h & 0xff)
            b[sof + 7] = UInt8(w >> 8); b[sof + 8] = UInt8(w & 0xff)
            let e = Image2DOracle.expectMedprepError("SOF \(w)x\(h)") { _ = try JPEGCodec.decode(b, path: "huge.jpg") }
            #expect(e?.code == .tooLarge, "\(w)x\(h): \(e?.description ?? "")")
            #expect(e?.message.contains("'\(w)x\(h)'") == true)
        }
    }

    @Test func decodedSizeLimitIsHonoured() throws {
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/rgb420_64x48.jpg"))
        let e = Image2DOracle.expectMedprepError("limit") {
            _ = try JPEGCodec.decode(bytes, path: "x.jpg", maxDecodedBytes: 64 * 48 * 3 - 1)
        }
        #expect(e?.code == .tooLarge)
        #expect(try JPEGCodec.decode(bytes, path: "x.jpg", maxDecodedBytes: 64 * 48 * 3).dims == [64, 48])
    }

    /// A progressive file made of one DC scan (patched to Ah = Al = 0, so repeating it is a
    /// consistent progression for libjpeg) repeated `count` times.
    static func repeatedDCScan(_ b: [UInt8], count: Int) throws -> [UInt8] {
        var i = 2
        var sos = -1
        while i + 4 <= b.count, b[i] == 0xFF {
            if b[i + 1] == 0xDA { sos = i; break }
            i += 2 + (Int(b[i + 2]) << 8 | Int(b[i + 3]))
        }
        try #require(sos > 0)
        let segmentEnd = sos + 2 + (Int(b[sos + 2]) << 8 | Int(b[sos + 3]))
        var end = segmentEnd
        while end + 1 < b.count, !(b[end] == 0xFF && b[end + 1] != 0 && !(0xD0...0xD7).contains(b[end + 1])) { end += 1 }
        var segment = Array(b[sos..<segmentEnd])
        #expect(segment[segment.count - 3] == 0 && segment[segment.count - 2] == 0, "first scan is the DC scan")
        segment[segment.count - 1] = 0  // Ah = 0, Al = 0
        let scan = segment + b[segmentEnd..<end]
        var out = Array(b[0..<sos])
        for _ in 0..<count { out += scan }
        return out + [0xFF, 0xD9]
    }

    @Test func scanCountIsLimited() throws {
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/progressive_grey.jpg"))
        let fine = try JPEGCodec.decode(try Self.repeatedDCScan(bytes, count: 999), path: "many.jpg")
        #expect(fine.dims == [13, 9])
        let e = Image2DOracle.expectMedprepError("1001 scans") {
            _ = try JPEGCodec.decode(try Self.repeatedDCScan(bytes, count: 1001), path: "many.jpg")
        }
        #expect(e?.code == .corruptImage)
        #expect(e?.message.contains("'1000' scans") == true, "\(e?.message ?? "")")
    }

    @Test func trailingBytesAfterEOIAreIgnored() throws {
        // As libjpeg and Pillow do: the image ends at EOI.
        let bytes = try FileIO.readAll(Fixtures.path("jpeg/grey.jpg"))
        let e = try #require(try Fixtures.expected("jpeg")["grey.jpg"])
        let image = try JPEGCodec.decode(bytes + [0, 1, 2, 3, 0xFF, 0xD9], path: "t.jpg")
        #expect(image.voxels.rawSHA256 == e.raw_sha256)
    }
}
