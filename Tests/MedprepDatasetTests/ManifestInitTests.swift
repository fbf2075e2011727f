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
            #expect(m == inferred.manifest, "the YAML reads back as the value it was written from")
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

/// A manifest written by ManifestYAML reads back (through Yams) as the same value, whatever it
/// holds: templates and reserved words quoted, colours, nested masks, 'keep', pad values.
@Suite struct ManifestYAMLTests {
    @Test func roundTripsThroughTheParser() throws {
        let values: [Manifest] = [
            Manifest(name: "yes", cases: CaseSpec(images: ["img/{id}_0000.nii.gz", "img/{id}_0001.nii.gz"], mask: nil,
                                                   nestedMasks: ["m/{id}_a.png", "m/{id}_b.png"], exclude: ["*/x*.png"]),
                     labels: LabelSpec(classes: [.init(name: "null", colour: [0, 0, 0]), .init(name: "on", colour: [255, 10, 3])], ordinal: true),
                     geometry: GeometrySpec(orientation: "LPS", sliceAxis: .y, targetSpacing: [0.7, nil, 2.5], size: [96, 128],
                                            fit: .padOrCrop, imageInterpolation: .cubic, labelInterpolation: .onehotLinear,
                                            foregroundMargin: 3, padValue: -1.25),
                     intensity: .init(mode: .zscoreNonzero),
                     maps: MapsSpec(sdf: true, rrw: false, convention: .itk, units: .mm, scales: [1, 2, 4], storage: .compact, dtype: .float16),
                     folds: .init(k: 3, seed: 12345678901), shardSize: 7, dtypes: .init(image: .float16, label: .uint16)),
            Manifest(name: "plain name: with colon", layout: .nnunet),
        ]
        for m in values {
            let text = try ManifestYAML.text(m, header: ["a header"], comments: ["labels.ordinal": "note", "maps": "projected"])
            #expect(try Manifest.parse(text, path: "m.yaml") == m, "\(text)")
            #expect(text.hasPrefix("# a header\n"))
        }
        let text = try ManifestYAML.text(values[0])
        #expect(text.contains("images: [\"img/{id}_0000.nii.gz\", \"img/{id}_0001.nii.gz\"]"))
        #expect(text.contains("name: \"yes\"") && text.contains("{name: \"null\", colour: [0, 0, 0]}"))
        #expect(text.contains("target_spacing: [0.7, keep, 2.5]") && text.contains("pad_value: -1.25"))
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
