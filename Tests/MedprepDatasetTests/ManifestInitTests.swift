import Foundation
import Testing
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth

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
            let disc = try ResolvedDataset.resolve(root: dir, manifest: m)
            let labels = try disc.conversionLabels()
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

/// --force and --resume may remove only files convert itself writes.
@Suite struct OwnOutputTests {
    @Test func onlyConvertsOwnFilesAreRecognised() {
        for own in ["index.json", ".medprep-journal.json", "shard-00000.safetensors", "shard-123456.safetensors",
                    "shard-00003.safetensors.tmp-4242", "index.json.tmp-7", ".medprep-journal.json.tmp-99"] {
            #expect(OutputFiles.isOwn(own), "\(own)")
        }
        for user in ["shard-00000.safetensors.bak", "notes.tmp-old", "shard-0.safetensors", "my-index.json",
                     "shard-00000.safetensors.tmp-", "shard-abcde.safetensors", "index.json.tmp-12x", "README.txt"] {
            #expect(!OutputFiles.isOwn(user), "\(user)")
        }
    }
}
