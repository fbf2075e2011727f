import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth
@testable import MedprepIO

@Suite struct ManifestTests {
    static let minimal = """
        name: demo
        cases: {images: "img/{id}.png", mask: "msk/{id}.png"}
        labels:
          classes: [{name: bg, value: 0}, {name: fg, value: 255}]
        """

    @Test func defaultsAreFilledIn() throws {
        let m = try Manifest.parse(Self.minimal, path: "m.yaml")
        #expect(m.geometry.orientation == "RAS" && m.geometry.sliceAxis == .z)
        #expect(m.maps.convention == .boundary && m.maps.scales == [1])
        #expect(m.folds.k == 5 && m.shardSize == 64)
        #expect(m.labels?.classes.map(\.value) == [0, 255])
    }

    @Test func jsonIsAccepted() throws {
        let m = try Manifest.parse(#"{"name": "j", "cases": {"images": ["a/{id}.nii.gz"], "mask": "b/{id}.nii.gz"}, "labels": {"classes": [{"name": "bg"}, {"name": "x"}]}, "geometry": {"target_spacing": [1.5, 1.5, "keep"]}}"#, path: "m.json")
        #expect(m.geometry.targetSpacing! == [1.5, 1.5, nil])
    }

    /// Each bad manifest names the key and the expected form.
    @Test(arguments: [
        ("name: x\ngeometry: {sise: [1, 2]}", "geometry.sise"),
        ("name: x\ngeometry: {size: [0, 5]}", "geometry.size"),
        ("name: x\ngeometry: {slice_axis: w}", "geometry.slice_axis"),
        ("name: x\nmaps: {convention: euclid}", "maps.convention"),
        ("name: x\nmaps: {scales: [2, 1]}", "maps.scales"),
        ("name: x\nfolds: {k: 0}", "folds.k"),
        ("name: x\nshard_size: -3", "shard_size"),
        ("name: x\nlabels: {classes: [{name: a}]}", "labels.classes"),
        ("name: x\nlabels: {classes: [{name: a, colour: [1, 2]}, {name: b, colour: [3, 4, 5]}]}", "colour"),
        ("geometry: {}", "name"),
        ("name: x\ngeometry: {orientation: RAQ}", "geometry.orientation"),
        ("name: x\nintensity: {mode: zscor}", "intensity.mode"),
    ])
    func badManifestNamesTheKey(_ text: String, _ key: String) {
        do {
            _ = try Manifest.parse(text, path: "bad.yaml")
            Issue.record("accepted: \(text)")
        } catch let e as MedprepError {
            #expect(e.path == "bad.yaml")
            #expect(e.message.contains(key), "\(e.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// Found by fuzzing (manifest-yaml): Yams decodes any plain scalar with a colon into an
    /// integer as base 60, keeping the parts that read as numbers, and traps on overflow; the
    /// manifest reader refuses such scalars first, with the line. The second finding started
    /// with bytes that are not digits (`\u{FFFD}`), which the first fix let through.
    @Test(arguments: ["folds: {k: 1:1:1:1:1:1:1:1:1:1:1:1}", "folds: {seed: 123333333111111111111:1111eomeyr3;t:33333333345}",
                      "shard_size: -99999999999:99999999999", "shard_size: 1:30",
                      "folds: {k: 5, seed: \u{FFFD}\u{FFFD}^0:4::::2:1:1:1:1:1:1:1:1:1:1}", "shard_size: x:5",
                      "shard_size: 1_0:3_0", "folds: {seed: ab::99999999999999999999:2}"])
    func baseSixtyNumbersAreRefused(line: String) throws {
        do {
            _ = try Manifest.parse("name: x\n" + line + "\n", path: "m.yaml")
            Issue.record("accepted \(line)")
        } catch let e as MedprepError {
            #expect(e.path == "m.yaml" && e.message.contains("base-60 number") && e.message.contains("line 2"), "\(e)")
        }
        // Quoted, the same characters are text.
        #expect(try Manifest.parse("name: '1:30'\n", path: "m.yaml").name == "1:30")
    }

    /// Plain text with colons but no part that reads as a number is not base 60 (Yams would
    /// read no number from it) and stays text.
    @Test(arguments: ["C:/data", "run:a:b", "x::y"])
    func colonTextWithoutNumbersIsText(name: String) throws {
        #expect(try Manifest.parse("name: \(name)\n", path: "m.yaml").name == name)
        #expect(!Manifest.readsAsBaseSixty(name))
    }

    /// Yams parses recursively: `name: [[[[...` 5,000 deep overflowed the 8 MiB main stack
    /// (SIGSEGV). The parse runs on a thread whose stack holds the depth the text allows; text
    /// past the bound is refused without parsing.
    @Test(arguments: [
        "name: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000),
        "name: x\nfolds:\n" + String(repeating: "- ", count: 8000) + "x",
        "name: x\nlabels:\n" + (1..<1500).map { String(repeating: " ", count: $0) + "a:\n" }.joined(),
    ])
    func deepNestingIsAnErrorNotACrash(text: String) throws {
        #expect(Manifest.nestingBound(text) <= Manifest.maxNesting)
        #expect(throws: MedprepError.self) { try Manifest.parse(text, path: "m.yaml") }
    }

    @Test func nestingPastTheBoundIsRefusedUnparsed() throws {
        let text = "name: " + String(repeating: "[", count: 20000)
        do {
            _ = try Manifest.parse(text, path: "m.yaml")
            Issue.record("accepted")
        } catch let e as MedprepError {
            #expect(e.message.contains("nested too deeply") && e.message.contains("40006"), "\(e)")
        }
        // The bound never under-counts: flow brackets in quotes count, and so does a block's column.
        #expect(Manifest.nestingBound("a: '[[['\n") == 3 + 8)
        #expect(Manifest.nestingBound("a:\n  b:\n    c: 1\n") == 8)
    }

    @Test func canonicalHashIgnoresFormatting() throws {
        let a = try Manifest.parse(Self.minimal, path: "a")
        let b = try Manifest.parse(Self.minimal.replacingOccurrences(of: "name: demo", with: "name:   demo  # comment"), path: "b")
        #expect(a.sha256 == b.sha256)
        var c = a
        c.shardSize = 7
        #expect(c.sha256 != a.sha256)
    }
}

@Suite struct DiscoveryTests {
    static func tempDir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-disc-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static func touch(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileIO.writeAtomically([1], to: path)
    }

    @Test func templatesPairAndReportProblems() throws {
        let d = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        for f in ["img/b.png", "img/a.png", "img/c.png", "msk/a.png", "msk/b.png", "msk/z.png", "img/.hidden.png"] { try Self.touch(d + "/" + f) }
        let disc = try CaseDiscovery.discover(root: d, spec: CaseSpec(images: ["img/{id}.png"], mask: "msk/{id}.png"))
        #expect(disc.cases.map(\.id) == ["a", "b"])
        let messages = disc.problems.map(\.message).joined(separator: "\n")
        #expect(messages.contains("image without mask") && messages.contains("'c'"))
        #expect(messages.contains("mask without image") && messages.contains("'z'"))
    }

    @Test func acdcLayoutWithExcludes() throws {
        let d = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        for f in ["patient001/patient001_frame01.nii.gz", "patient001/patient001_frame01_gt.nii.gz", "patient001/patient001_4d.nii.gz",
                  "patient002/patient002_frame12.nii.gz", "patient002/patient002_frame12_gt.nii.gz"] { try Self.touch(d + "/" + f) }
        let spec = CaseSpec(images: ["*/{id}.nii.gz"], mask: "*/{id}_gt.nii.gz", exclude: ["*/*_gt.nii.gz", "*/*_4d.nii.gz"])
        let disc = try CaseDiscovery.discover(root: d, spec: spec)
        #expect(disc.cases.map(\.id) == ["patient001_frame01", "patient002_frame12"])
        #expect(disc.cases[0].mask!.hasSuffix("patient001/patient001_frame01_gt.nii.gz"))
        #expect(disc.problems.isEmpty)
    }

    @Test func synthDatasetsAreDiscovered() throws {
        let d = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        var opts = Synth.Options()
        opts.cases3D = 2; opts.cases2D = 3; opts.size3D = [24, 20, 6]; opts.size2D = [16, 12]
        let dirs = try Synth.write(to: d, options: opts)
        for dir in dirs {
            let m = try Manifest.load(path: dir + "/manifest.yaml")
            let disc = try ResolvedDataset.resolve(root: dir, manifest: m)
            let labels = try disc.conversionLabels()
            #expect(disc.problems.isEmpty, "\(dir)")
            #expect(disc.cases.count == (dir.hasSuffix("synth3d") ? 2 : 3))
            #expect(labels.classes.count == 4 && labels.ordinal)
            // Every case's mask maps onto the declared classes, and the shells are nested.
            for c in disc.cases {
                let mask = try ImageReader.read(path: c.mask!)
                let mapped = try MaskDecoder(labels: labels).classIndices(mask, path: c.mask!, undeclared: .refuse)
                #expect(Set(mapped.classes).isSubset(of: [0, 1, 2, 3]) && mapped.classes.contains(3))
            }
        }
        // The 3D volumes stored LPS read back with the right orientation code.
        let lps = try ImageReader.read(path: dirs[0] + "/imagesTr/synth_001_0000.nii.gz")
        #expect(lps.orientation == "LPS")
    }
}

@Suite struct MaskDecoderTests {
    func mask(_ values: [UInt8], channels: Int = 1, dims: [Int]) -> MedicalImage {
        MedicalImage(format: .png, dims: dims, spacing: [1, 1], channels: channels, affine: .identity, affineSource: .image2D, voxels: .uint8(values))
    }

    @Test func greyLevelsMapToClassIndices() throws {
        let spec = LabelSpec(classes: [.init(name: "a", value: 0), .init(name: "b", value: 85), .init(name: "c", value: 170), .init(name: "d", value: 255)])
        let m = try MaskDecoder(labels: spec).classIndices(mask([0, 85, 170, 255, 85, 0], dims: [3, 2]), path: "m.png", undeclared: .refuse)
        #expect(m.classes == [0, 1, 2, 3, 1, 0] && m.snapped == 0)
        // An undeclared grey level in a lossless mask is an error naming the value.
        #expect { try MaskDecoder(labels: spec).classIndices(mask([0, 86], dims: [2, 1]), path: "m.png", undeclared: .refuse) } throws: {
            ($0 as? MedprepError)?.message.contains("'86'") == true
        }
        // JPEG: snapped to the nearest declared value, and counted.
        let j = try MaskDecoder(labels: spec).classIndices(mask([3, 90, 130, 250], dims: [4, 1]), path: "m.jpg", undeclared: .snapToNearest)
        #expect(j.classes == [0, 1, 2, 3] && j.snapped == 4)
    }

    /// Stored types other than 8-bit, scaling, negative and large declared values: every voxel
    /// as a brute-force lookup of its scaled value in the declared list would map it.
    @Test func storedTypesAndScaling() throws {
        let declared = [0, -3, 1000, 70_000]
        let spec = LabelSpec(classes: declared.enumerated().map { .init(name: "c\($0.offset)", value: $0.element) })
        let stored: [Double] = [0, 0, -3, 1000, 1000, 70_000, 0, -3]
        let masks: [(VoxelBuffer, IntensityScaling?)] = [
            (.int32(stored.map { Int32($0) }), nil),
            (.int16(stored.map { Int16($0 / 10) }), IntensityScaling(slope: 10, intercept: 0)),  // -3 is stored as 0
            (.uint16(stored.map { UInt16(max(0, $0) / 10) }), IntensityScaling(slope: 10, intercept: 1)),  // undeclared 1, 10001...
            (.float32(stored.map { Float($0) / 2 }), IntensityScaling(slope: 2, intercept: 0)),
            (.float64(stored.map { $0 + 1 }), IntensityScaling(slope: 1, intercept: -1)),
        ]
        for (voxels, scaling) in masks {
            var m = MedicalImage(format: .nifti1, dims: [stored.count, 1, 1], spacing: [1, 1, 1], channels: 1, affine: .identity,
                                 affineSource: .pixdim, voxels: voxels)
            m.scaling = scaling
            let raws = (0..<m.voxelCount).map { m.scaled(m.voxels.double(at: $0)) }
            let bad = raws.filter { !declared.map(Double.init).contains($0) }
            if !bad.isEmpty {
                let e = #expect(throws: MedprepError.self) { try MaskDecoder(labels: spec).classIndices(m, path: "m.nii", undeclared: .refuse) }
                // Every undeclared value named with its own count; the total when there are several.
                for v in Set(bad) {
                    let n = bad.filter { $0 == v }.count
                    #expect(e?.message.contains("'\(formatShort(v))' (\(n) voxels)") == true, "\(voxels.type): \(e?.message ?? "")")
                }
                if Set(bad).count > 1 { #expect(e?.message.contains("(\(bad.count) voxels in all)") == true, "\(e?.message ?? "")") }
            } else {
                let mapped = try MaskDecoder(labels: spec).classIndices(m, path: "m.nii", undeclared: .refuse)
                #expect(mapped.classes == raws.map { r in UInt16(declared.firstIndex(of: Int(r))!) } && mapped.snapped == 0, "\(voxels.type)")
            }
        }
        // NaN is never a declared value.
        let nan = MedicalImage(format: .nifti1, dims: [2, 1, 1], spacing: [1, 1, 1], channels: 1, affine: .identity,
                               affineSource: .pixdim, voxels: .float32([0, .nan]))
        #expect(throws: MedprepError.self) { try MaskDecoder(labels: spec).classIndices(nan, path: "m.nii", undeclared: .refuse) }
    }

    @Test func coloursAndNestedMasks() throws {
        let spec = LabelSpec(classes: [.init(name: "bg", colour: [0, 0, 0]), .init(name: "r", colour: [255, 0, 0]), .init(name: "g", colour: [0, 255, 0])])
        let m = try MaskDecoder(labels: spec).classIndices(mask([0, 0, 0, 255, 0, 0, 0, 255, 0, 250, 10, 0], channels: 3, dims: [4, 1]), path: "c.jpg", undeclared: .snapToNearest)
        #expect(m.classes == [0, 1, 2, 1] && m.snapped == 1)
        let outer = mask([0, 1, 1, 1], dims: [4, 1]), inner = mask([0, 0, 1, 1], dims: [4, 1]), core = mask([0, 0, 0, 255], dims: [4, 1])
        #expect(try MaskDecoder.nestedClassIndices([outer, inner, core], path: "n") == [0, 1, 2, 3])
    }
}

@Suite struct FoldAndSliceTests {
    @Test func foldsAreBalancedDeterministicAndOrderFree() {
        let ids = (0..<23).map { "case\($0)" }
        let a = Folds.assign(ids: ids, k: 5, seed: 7)
        let b = Folds.assign(ids: ids.reversed(), k: 5, seed: 7)
        #expect(a == b)
        let sizes = (0..<5).map { f in a.values.filter { $0 == f }.count }
        #expect(sizes.max()! - sizes.min()! <= 1 && sizes.reduce(0, +) == 23)
        #expect(Folds.assign(ids: ids, k: 5, seed: 8) != a)
    }

    @Test func positionAndPartition() {
        // N = 8: p = (i+1)/8, partitions 1,1,2,2,3,3,4,4 (hand computed).
        let metas = (0..<8).map { SliceMeta(caseIndex: 0, sliceIndex: $0, sliceCount: 8, coordinateMM: 0) }
        #expect(metas.map(\.position) == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])
        #expect(metas.map(\.partition) == [1, 1, 2, 2, 3, 3, 4, 4])
        #expect(SliceMeta(caseIndex: 0, sliceIndex: 0, sliceCount: 1, coordinateMM: 0).position == 1.0)
    }
}
