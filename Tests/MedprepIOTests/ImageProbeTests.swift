import Foundation
import MedprepCore
import Testing

@testable import MedprepIO

/// Header-only geometry (convert's preflight) against the fixtures' oracles: Pillow's size and
/// channel count for every PNG and JPEG fixture, nibabel's shape, zooms and affine for the NIfTI
/// ones; and a clean error for hostile files.
@Suite struct ImageProbeTests {
    @Test(arguments: ["png", "jpeg"])
    func imagesMatchPillow(_ folder: String) throws {
        let expected = try Fixtures.expected(folder)
        #expect(expected.count > 5)
        for (name, e) in expected {
            let path = Fixtures.root.appendingPathComponent(folder).appendingPathComponent(name).path
            let p = try ImageProbe.probe(path: path)
            #expect(Array(p.dims.prefix(2)) == e.dims && p.dims[2] == 1, "\(name): dims")
            #expect(p.channels == e.channels, "\(name): channels")
            #expect(p.is2D, "\(name)")
        }
    }

    @Test func niftiMatchesNibabel() throws {
        let expected = try Fixtures.expected("nifti")
        var checked = 0
        for (name, e) in expected where e.dims.count >= 2 {
            let path = Fixtures.root.appendingPathComponent("nifti").appendingPathComponent(name).path
            guard let p = try? ImageProbe.probe(path: path) else { continue }
            let d = (0..<3).map { $0 < e.dims.count ? e.dims[$0] : 1 }
            #expect(p.dims == d, "\(name): dims")
            #expect(p.is2D == (e.dims.count == 2), "\(name)")
            if let sp = e.spacing {
                #expect(zip(p.spacing, sp).allSatisfy { Fixtures.relClose($0, $1) }, "\(name): spacing \(p.spacing) vs \(sp)")
            }
            if let a = e.affine {
                #expect(zip(p.affine.rows.joined(), a.joined()).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }, "\(name): affine")
            }
            checked += 1
        }
        #expect(checked > 20)
    }

    @Test(arguments: ["png", "jpeg"])
    func hostileFilesGiveAnErrorOrTheirHeader(_ folder: String) throws {
        let dir = Fixtures.root.appendingPathComponent(folder).appendingPathComponent("hostile")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where !name.hasSuffix(".json") {
            do {
                let p = try ImageProbe.probe(path: dir.appendingPathComponent(name).path)
                #expect(p.dims.allSatisfy { $0 >= 1 } && (1...4).contains(p.channels), "\(name)")
            } catch let e as MedprepError {
                #expect(e.path?.hasSuffix(name) == true, "\(name): the error names the file")
            }
        }
    }

    /// A JPEG whose APP segments push the frame header past the first 64 KiB read.
    @Test func frameHeaderAfterLargeAppSegments() throws {
        let src = Fixtures.root.appendingPathComponent("jpeg").appendingPathComponent("exif_orientation6.jpg").path
        let original = try FileIO.readAll(src)
        var bytes = Array(original.prefix(2))
        for _ in 0..<2 { bytes += [0xff, 0xe2, 0xff, 0xfd] + [UInt8](repeating: 0x41, count: 0xfffd - 2) }
        bytes += original.dropFirst(2)
        let path = NSTemporaryDirectory() + "probe-\(UUID().uuidString).jpg"
        try FileIO.writeAtomically(bytes, to: path)
        defer { unlink(path) }
        let p = try ImageProbe.probe(path: path)
        let e = try #require(try Fixtures.expected("jpeg")["exif_orientation6.jpg"])
        #expect(Array(p.dims.prefix(2)) == e.dims && p.channels == e.channels)
    }

    @Test func truncatedPNGNamesTheFile() throws {
        let path = NSTemporaryDirectory() + "probe-\(UUID().uuidString).png"
        try FileIO.writeAtomically([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13], to: path)
        defer { unlink(path) }
        #expect(throws: MedprepError.self) { _ = try ImageProbe.probe(path: path) }
    }
}
