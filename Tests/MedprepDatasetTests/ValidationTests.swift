import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth
@testable import MedprepIO

/// The defect fixtures are written once per test process (they take well under a second).
enum ValidationFixtures {
    static let root: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-validate-\(UUID().uuidString)").path
        _ = try! SynthDefects.write(to: d)
        return d
    }()

    static func expected(_ dir: String) throws -> (cases: [String: Set<String>], dataset: Set<String>) {
        let json = try JSON.parse(String(decoding: try FileIO.readAll(dir + "/expected.json"), as: UTF8.self))
        guard case .object(let cases)? = json["cases"] else { throw MedprepError(.invalidArgument, "bad expected.json") }
        var out: [String: Set<String>] = [:]
        for (id, codes) in cases { out[id] = Set((codes.arrayValue ?? []).compactMap(\.stringValue)) }
        return (out, Set((json["dataset"]?.arrayValue ?? []).compactMap(\.stringValue)))
    }

    static func tempDir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-\(name)-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}

@Suite struct ValidationDefectTests {
    /// Every defective case yields exactly its own code; clean cases yield nothing.
    @Test(arguments: ["defects3d", "defects2d", "defects-inferred"])
    func eachDefectYieldsExactlyItsCode(_ name: String) throws {
        let dir = ValidationFixtures.root + "/" + name
        let report = try Validator(root: dir, manifestPath: nil).run(threads: 2)
        let (expected, expectedDataset) = try ValidationFixtures.expected(dir)
        var got: [String: Set<String>] = [:]
        for f in report.findings { if let id = f.caseID { got[id, default: []].insert(f.code.rawValue) } }
        for (id, codes) in expected.sorted(by: { $0.key < $1.key }) {
            #expect((got[id] ?? []) == codes, "case \(id): got \(got[id] ?? []) \(report.findings.filter { $0.caseID == id }.map(\.message))")
        }
        #expect(Set(got.keys).isSubset(of: Set(expected.keys)), "unexpected cases \(Set(got.keys).subtracting(expected.keys))")
        let datasetCodes = Set(report.findings.filter { $0.caseID == nil }.map(\.code.rawValue))
        #expect(datasetCodes == expectedDataset)
    }

    /// The fixtures cover every code except no-cases (tested on its own below).
    @Test func fixturesCoverEveryCode() throws {
        var covered = Set<String>()
        for name in ["defects3d", "defects2d", "defects-inferred"] {
            let (cases, dataset) = try ValidationFixtures.expected(ValidationFixtures.root + "/" + name)
            covered.formUnion(cases.values.flatMap { $0 })
            covered.formUnion(dataset)
        }
        let all = Set(CheckCode.allCases.map(\.rawValue)).subtracting(["no-cases"])
        #expect(all.subtracting(covered).isEmpty, "not covered: \(all.subtracting(covered).sorted())")
    }

    @Test func messagesCarryValuesAndFixes() throws {
        let report = try Validator(root: ValidationFixtures.root + "/defects3d", manifestPath: nil).run(threads: 2)
        let zero255 = try #require(report.findings(.mask0255).first)
        #expect(zero255.fix?.contains("remap 255 to 1") == true)
        let contact = try #require(report.findings(.ordinalContact).first)
        #expect(contact.message.contains("'outer'–'core'") && contact.message.contains("worst slice z"))
        let origin = try #require(report.findings(.originMismatch).first)
        #expect(origin.message.contains("4 mm apart"))
        let direction = try #require(report.findings(.directionMismatch).first)
        #expect(direction.message.contains("8°"))
        let undeclared = try #require(report.findings(.labelsUndeclared).first)
        #expect(undeclared.message.contains("7 (18 voxels)"))
        let nesting = try #require(report.findings(.ordinalNesting).first)
        #expect(nesting.message.contains("18 voxels of 'core'"))
        #expect(report.findings.allSatisfy { !$0.message.isEmpty && $0.message.hasSuffix(".") })
    }

    /// Same bytes whatever the thread count.
    @Test func reportIsDeterministic() throws {
        let dir = ValidationFixtures.root + "/defects3d"
        let a = try Validator(root: dir, manifestPath: nil).run(threads: 1).json.serialized(indent: 2)
        let b = try Validator(root: dir, manifestPath: nil).run(threads: 3).json.serialized(indent: 2)
        #expect(a == b)
    }

    /// Error-level scope finds exactly the errors of the full run.
    @Test func errorScopeMatchesFullRunErrors() throws {
        let dir = ValidationFixtures.root + "/defects3d"
        let full = try Validator(root: dir, manifestPath: nil).run(threads: 2)
        let quick = try Validator.checkErrors(manifest: try Manifest.load(path: dir + "/manifest.yaml"), root: dir, threads: 2)
        #expect(quick.warnings.isEmpty && quick.infos.isEmpty)
        let pairs = { (r: ValidationReport) in r.errors.map { "\($0.caseID ?? "-") \($0.code.rawValue) \($0.file ?? "")" } }
        #expect(pairs(quick) == pairs(full))
        #expect(quick.hasErrors && quick.exitCode(strict: false) == 1)
    }

    @Test func thumbnailsAreWrittenForFlaggedCases() throws {
        let out = ValidationFixtures.tempDir("thumbs")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var o = ValidationOptions()
        o.thumbnailsDirectory = out
        let report = try Validator(root: ValidationFixtures.root + "/defects2d", manifestPath: nil, options: o).run(threads: 2)
        let flagged = report.cases.filter { $0.status == "error" || $0.status == "warning" }
        #expect(!flagged.isEmpty)
        for c in flagged {
            let path = try #require(c.thumbnail, "no thumbnail for \(c.id)")
            let png = try PNGCodec.read(path: path)
            #expect(png.channels == 3 && png.dims[0] >= 48)
        }
        #expect(report.cases.filter { $0.status == "ok" }.allSatisfy { $0.thumbnail == nil })
        // The offending pixels are drawn in magenta.
        let contact = try PNGCodec.read(path: out + "/ordinal-contact.png")
        guard case .uint8(let px) = contact.voxels else { Issue.record("not uint8"); return }
        #expect(stride(from: 0, to: px.count, by: 3).contains { px[$0] == 255 && px[$0 + 1] == 0 && px[$0 + 2] == 255 })
    }
}

@Suite struct ValidationCleanTests {
    /// The clean synthetic datasets yield no findings at all.
    @Test func cleanSyntheticDatasetsYieldNothing() throws {
        let dir = ValidationFixtures.tempDir("synth")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = Synth.Options()
        o.cases3D = 3
        o.cases2D = 3
        o.size3D = [48, 48, 12]
        for d in try Synth.write(to: dir, options: o) {
            let report = try Validator(root: d, manifestPath: nil).run(threads: 2)
            #expect(report.findings.isEmpty, "\(d): \(report.findings.map { "\($0.code.rawValue): \($0.message)" })")
            #expect(report.exitCode(strict: true) == 0)
            #expect(report.cases.allSatisfy { $0.structureChecked })
        }
    }

    @Test func emptyDatasetIsNoCases() throws {
        let dir = ValidationFixtures.tempDir("empty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileIO.writeAtomically(Array("name: e\ncases: {images: 'img/{id}.png', mask: 'msk/{id}.png'}\nlabels: {classes: [{name: bg}, {name: fg}]}\n".utf8),
                                   to: dir + "/manifest.yaml")
        let report = try Validator(root: dir, manifestPath: nil).run()
        #expect(report.findings.map(\.code) == [.noCases])
        #expect(report.exitCode(strict: false) == 1)
    }

    @Test func folderWithoutAnythingIsAUsageError() throws {
        let dir = ValidationFixtures.tempDir("nothing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: MedprepError.self) { try Validator(root: dir, manifestPath: nil) }
    }

    @Test func nestedMasksThatAreNotNested() throws {
        let dir = ValidationFixtures.tempDir("nested")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["img", "a", "b"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true) }
        let (w, h) = (24, 24)
        func png(_ px: [UInt8], _ path: String) throws {
            try PNGCodec.write(MedicalImage(format: .png, dims: [w, h], spacing: [1, 1], affine: .identity, affineSource: .image2D,
                                            voxels: .uint8(px)), to: path)
        }
        var outer = [UInt8](repeating: 0, count: w * h), inner = outer
        for y in 4..<20 { for x in 4..<20 { outer[y * w + x] = 255 } }
        for y in 8..<16 { for x in 8..<16 { inner[y * w + x] = 255 } }
        inner[1 * w + 1] = 255; inner[1 * w + 2] = 255  // outside the outer mask
        try png((0..<(w * h)).map { UInt8($0 % 200) }, dir + "/img/t1.png")
        try png(outer, dir + "/a/t1.png")
        try png(inner, dir + "/b/t1.png")
        let m = try Manifest.parse("""
            name: n
            cases: {images: "img/{id}.png", nested_masks: ["a/{id}.png", "b/{id}.png"]}
            labels: {ordinal: true, classes: [{name: bg}, {name: enamel}, {name: dentin}]}
            """, path: "m")
        var o = ValidationOptions()
        o.minComponentSize = 1
        let report = try Validator(manifest: m, root: dir, options: o).run()
        let nesting = report.findings(.ordinalNesting)
        #expect(nesting.count == 1)
        #expect(nesting.first?.message.contains("covers 2 pixels outside mask 1") == true)
    }
}

/// The voxel algorithms against brute force on random grids.
@Suite struct ValidationAlgorithmTests {
    static func randomCodes(_ g: Grid, classes: Int, seed: UInt64, density: Double) -> [UInt16] {
        var rng = SplitMix64(seed: seed)
        return (0..<g.count).map { _ in rng.unit() < density ? UInt16(1 + Int(rng.next() % UInt64(classes - 1))) : 0 }
    }

    /// Neighbours of v by brute-force coordinate arithmetic.
    static func neighbours(_ v: Int, _ g: Grid, full: Bool) -> [Int] {
        let c = g.coords(v)
        var out: [Int] = []
        for dz in (g.is2D ? [0] : [-1, 0, 1]) {
            for dy in -1...1 {
                for dx in -1...1 {
                    let n = abs(dx) + abs(dy) + abs(dz)
                    if n == 0 || (!full && n > 1) { continue }
                    let x = c[0] + dx, y = c[1] + dy, z = c[2] + dz
                    if x < 0 || y < 0 || z < 0 || x >= g.nx || y >= g.ny || z >= g.nz { continue }
                    out.append((z * g.ny + y) * g.nx + x)
                }
            }
        }
        return out
    }

    static func floodComponents(_ codes: [UInt16], _ g: Grid, full: Bool) -> [Int] {
        var seen = [Bool](repeating: false, count: g.count)
        var sizes: [Int] = []
        for s in 0..<g.count where codes[s] != 0 && !seen[s] {
            var stack = [s]
            seen[s] = true
            var n = 0
            while let v = stack.popLast() {
                n += 1
                for u in neighbours(v, g, full: full) where !seen[u] && codes[u] == codes[s] { seen[u] = true; stack.append(u) }
            }
            sizes.append(n)
        }
        return sizes
    }

    @Test(arguments: [(Grid(nx: 13, ny: 11, nz: 7), true), (Grid(nx: 13, ny: 11, nz: 7), false),
                      (Grid(nx: 31, ny: 17, nz: 1), true), (Grid(nx: 31, ny: 17, nz: 1), false)])
    func componentsMatchFloodFill(_ g: Grid, _ full: Bool) {
        for seed in 0..<4 {
            let codes = Self.randomCodes(g, classes: 3, seed: UInt64(seed), density: 0.45)
            let (_, comps) = MaskStructure.label(PaddedCodes(codes, grid: g), full: full)
            #expect(comps.map(\.size).sorted() == Self.floodComponents(codes, g, full: full).sorted())
        }
    }

    /// Holes: for each level k, voxels of class < k not connected to the border through class < k.
    @Test(arguments: [Grid(nx: 12, ny: 10, nz: 6), Grid(nx: 25, ny: 19, nz: 1)])
    func holesMatchPerLevelFloodFill(_ g: Grid) {
        for seed in 0..<4 {
            let codes = Self.randomCodes(g, classes: 4, seed: 100 + UInt64(seed), density: 0.7)
            var s = MaskStructure()
            s.findHoles(PaddedCodes(codes, grid: g), classCount: 4, full: true, mark: { _ in })
            var brute = Set<Int>()
            for k in 1..<4 {
                var reached = [Bool](repeating: false, count: g.count)
                var stack: [Int] = []
                for v in 0..<g.count where Int(codes[v]) < k {
                    let c = g.coords(v)
                    if c[0] == 0 || c[1] == 0 || c[0] == g.nx - 1 || c[1] == g.ny - 1 || (!g.is2D && (c[2] == 0 || c[2] == g.nz - 1)) {
                        reached[v] = true; stack.append(v)
                    }
                }
                while let v = stack.popLast() {
                    for u in Self.neighbours(v, g, full: false) where !reached[u] && Int(codes[u]) < k { reached[u] = true; stack.append(u) }
                }
                for v in 0..<g.count where Int(codes[v]) < k && !reached[v] { brute.insert(v) }
            }
            #expect(s.holes.reduce(0) { $0 + $1.size } == brute.count)
        }
    }

    /// Cropping to the foreground's box changes nothing but speed.
    @Test(arguments: [Grid(nx: 20, ny: 17, nz: 9), Grid(nx: 40, ny: 33, nz: 1)])
    func croppedAnalysisEqualsFullGrid(_ g: Grid) {
        for seed in 0..<3 {
            var codes = [UInt16](repeating: 0, count: g.count)
            var rng = SplitMix64(seed: 300 + UInt64(seed))
            for v in 0..<g.count {
                let c = g.coords(v)
                if (3..<(g.nx - 4)).contains(c[0]) && (2..<(g.ny - 5)).contains(c[1]) && (g.is2D || (1..<(g.nz - 2)).contains(c[2])) {
                    codes[v] = rng.unit() < 0.8 ? UInt16(rng.next() % 4) : 0
                }
            }
            let a = MaskStructure.analyse(codes: codes, grid: g, classCount: 4, ordinal: true, full: true, minComponentSize: 3, sliceAxis: g.is2D ? 2 : 1)
            let b = MaskStructure.analyseGrid(codes: codes, grid: g, classCount: 4, ordinal: true, full: true, minComponentSize: 3, sliceAxis: g.is2D ? 2 : 1)
            #expect(a.components.map { "\($0.cls) \($0.size) \($0.first)" }.sorted() == b.components.map { "\($0.cls) \($0.size) \($0.first)" }.sorted())
            #expect(a.contactFaces == b.contactFaces && a.transitions == b.transitions && a.contactVoxels == b.contactVoxels)
            #expect(a.worstSlice?.index == b.worstSlice?.index && a.worstSlice?.faces == b.worstSlice?.faces)
            #expect(a.holes.map { "\($0.size) \($0.first) \($0.level)" }.sorted() == b.holes.map { "\($0.size) \($0.first) \($0.level)" }.sorted())
            #expect(a.nesting.count == b.nesting.count && a.marks == b.marks)
        }
    }

    @Test func imageStatsMatchTwoPassFormula() {
        var rng = SplitMix64(seed: 9)
        let raw = (0..<5000).map { _ in Int16(20000 + Int(rng.next() % 4000)) }
        let img = MedicalImage(format: .nifti1, dims: [50, 100], spacing: [1, 1], affine: .identity, affineSource: .sform,
                               scaling: IntensityScaling(slope: -0.5, intercept: 3), voxels: .int16(raw))
        let v = raw.map { Double($0) * -0.5 + 3 }
        let mean = v.reduce(0, +) / Double(v.count)
        let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
        let s = Moments.of(img)
        #expect(s.count == 5000 && abs(s.mean - mean) < 1e-9 && abs(s.std - std) < 1e-9)
        #expect(s.min == v.min()! && s.max == v.max()!)
        let f = MedicalImage(format: .nifti1, dims: [3], spacing: [1], affine: .identity, affineSource: .sform,
                             voxels: .float32([1, .nan, 3]))
        #expect(Moments.of(f) == Moments(count: 2, mean: 2, std: 1, min: 1, max: 3, nonFinite: 1))
        #expect(ImageChecks.nonFinite(f).nan == 1)
    }

    @Test func contactCountsFacesBetweenFarClasses() {
        // 1 | 3 side by side, then 2 | 3: one far contact face per row.
        let g = Grid(nx: 2, ny: 3, nz: 1)
        let codes: [UInt16] = [1, 3, 1, 3, 2, 3]
        let s = MaskStructure.analyse(codes: codes, grid: g, classCount: 4, ordinal: true, full: true, minComponentSize: 1, sliceAxis: 2)
        #expect(s.contactFaces == 2)
        #expect(s.transitions == 4)  // 1|3, 1|3, 2|3 across; 1-2 vertically
        #expect(s.nesting.isEmpty)  // the 3-component also touches 2
        let lone: [UInt16] = [1, 3, 1, 3, 1, 1]
        let t = MaskStructure.analyse(codes: lone, grid: g, classCount: 4, ordinal: true, full: true, minComponentSize: 1, sliceAxis: 2)
        #expect(t.nesting.count == 1 && t.contactFaces == 0)
    }

    @Test func zero255InBinaryManifestSaysRemap() throws {
        let labels = LabelSpec(classes: [ClassSpec(name: "bg", value: 0), ClassSpec(name: "lesion", value: 1)])
        let v = CaseValidator(labels: labels, options: .init(), geometry: .init())
        var px = [UInt8](repeating: 0, count: 100)
        for i in 30..<60 { px[i] = 255 }
        let img = MedicalImage(format: .png, dims: [10, 10], spacing: [1, 1], affine: .identity, affineSource: .image2D, voxels: .uint8(px))
        let (_, ok, findings, _) = v.maskValues(img, path: "m.png", caseID: "c", grid: Grid(nx: 10, ny: 10, nz: 1))
        #expect(!ok)
        #expect(findings.map(\.code) == [.mask0255])
        #expect(findings.first?.fix?.hasPrefix("remap 255 to 1") == true)
    }

    @Test func holeFixTellsACavityFromASkippedLayer() {
        // 7x7: a ring of class 2 around the centre pixel; the centre is background, then class 1.
        let g = Grid(nx: 7, ny: 7, nz: 1)
        func holes(centre: UInt16) -> [MaskStructure.Hole] {
            var codes = [UInt16](repeating: 0, count: 49)
            for y in 2...4 { for x in 2...4 { codes[y * 7 + x] = 2 } }
            codes[3 * 7 + 3] = centre
            return MaskStructure.analyse(codes: codes, grid: g, classCount: 3, ordinal: true, full: true,
                                         minComponentSize: 1, sliceAxis: 2).holes
        }
        let names: (Int) -> String = { "'c\($0)'" }
        let cavity = holes(centre: 0)
        #expect(cavity.count == 1 && cavity[0].fill == [0] && cavity[0].size == 1)
        #expect(CaseValidator.holeFix(cavity[0], names: names).contains("ventricle"))
        let skipped = holes(centre: 1)
        #expect(skipped.count == 1 && skipped[0].fill == [1])
        let fix = CaseValidator.holeFix(skipped[0], names: names)
        #expect(fix.hasPrefix("'c1' inside 'c2'") && !fix.contains("ventricle"))
    }
}
