import Foundation
import Testing
@testable import MedprepDataset

/// `manifest init` on the synthetic datasets recovers their layout and classes, and what it
/// writes loads as a manifest that discovers every case.
@Suite struct ManifestInitTests {
    @Test func infersSynthLayouts() throws {
        let d = DiscoveryTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        var opts = Synth.Options()
        opts.cases3D = 2; opts.cases2D = 3; opts.size3D = [20, 18, 5]; opts.size2D = [16, 12]
        let dirs = try Synth.write(to: d, options: opts)
        for dir in dirs {
            let inferred = try ManifestInit.infer(root: dir)
            let m = try Manifest.parse(inferred.yaml, path: dir)
            let (disc, labels) = try CaseDiscovery.discover(root: dir, manifest: m)
            #expect(disc.cases.count == (dir.hasSuffix("synth3d") ? 2 : 3), "\(dir)")
            #expect(labels.classes.count == 4, "\(inferred.yaml)")
            if dir.hasSuffix("synth2d") { #expect(labels.classes.map(\.value) == [0, 85, 170, 255]) }
            if dir.hasSuffix("colour") { #expect(labels.usesColours) }
        }
    }

    @Test func folderWithoutMasksIsAClearError() throws {
        let d = DiscoveryTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        try DiscoveryTests.touch(d + "/pics/a.png")
        #expect(throws: Error.self) { try ManifestInit.infer(root: d) }
    }
}
