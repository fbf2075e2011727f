import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth
@testable import MedprepIO

func sameTriple<A: Equatable, B: Equatable, C: Equatable>(_ x: (A, B, C), _ y: (A, B, C)) -> Bool { x == y }

@Suite struct InspectTests {
    var fx: InspectFixture.Outputs { get throws { try InspectFixture.shared.get() } }

    static func uint8(_ image: MedicalImage) -> [UInt8] {
        if case .uint8(let v) = image.voxels { return v }
        Issue.record("expected uint8 voxels")
        return []
    }

    @Test func classSharesMatchTheSourceMasks() throws {
        // Oracle: the 2D masks as written by synth (grey levels 0/85/170/255 = classes 0...3;
        // the slices keep the masks' size, so every pixel is in the shards once).
        let fx = try fx
        let masks = try FileManager.default.contentsOfDirectory(atPath: fx.data2D + "/masks").filter { $0.hasSuffix(".png") }.sorted()
        var counts = [Int](repeating: 0, count: 4), present = [Int](repeating: 0, count: 4)
        for m in masks {
            let values = Self.uint8(try PNGCodec.read(path: fx.data2D + "/masks/" + m))
            var here = Set<Int>()
            for v in values { counts[Int(v) / 85] += 1; here.insert(Int(v) / 85) }
            for c in here { present[c] += 1 }
        }
        let s = try OutputStatistics.compute(fx.out2D)
        #expect(s.classes.map(\.pixels) == counts)
        #expect(s.classes.map(\.slices) == present)
        #expect(s.classes.map(\.name) == Synth.classNames)
        let total = Double(counts.reduce(0, +))
        for (c, k) in zip(s.classes, counts) { #expect(abs(c.share - Double(k) / total) < 1e-12) }
        #expect(s.sampleCount == masks.count && s.cases.count == masks.count && s.cases.allSatisfy { $0.slices == 1 })
        #expect(sameTriple((s.channels, s.height, s.width), (3, 12, 16)))
        #expect(s.normalisationMode == "rgb-01" && s.imageDType == "F32" && s.labelDType == "U8")
    }

    @Test func statisticsOfVolumes() throws {
        let out = try fx.out3D
        let s = try OutputStatistics.compute(out)
        let index = try IndexFile.read(path: out + "/index.json")
        #expect(s.dataset == "synth3d" && s.ordinal == true)
        #expect(s.cases.map(\.slices) == index.cases.map { $0.sliceRange.count })
        #expect(s.cases.map(\.slices).reduce(0, +) == s.sampleCount)
        #expect(s.classes.map(\.pixels).reduce(0, +) == s.sampleCount * s.height * s.width)
        // Per-case class slices, brute force from the shards' labels.
        var perCase = [[Int]](repeating: [0, 0, 0, 0], count: s.cases.count)
        for sh in index.shards {
            let f = try SafetensorsReader.read(path: out + "/" + sh.file)
            let labels = try f.values("label", as: UInt8.self), ci = try f.values("case_index", as: Int32.self)
            let plane = s.height * s.width
            for r in 0..<ci.count {
                for c in Set(labels[(r * plane)..<((r + 1) * plane)]) { perCase[Int(ci[r])][Int(c)] += 1 }
            }
        }
        #expect(s.cases.map(\.classSlices) == perCase)
        #expect(s.classes.map(\.slices) == (0..<4).map { c in perCase.reduce(0) { $0 + $1[c] } })
        // Folds: every case counted once.
        #expect(s.foldsK == 3 && s.folds.count == 3)
        #expect(s.folds.map(\.cases).reduce(0, +) == s.cases.count && s.folds.map(\.slices).reduce(0, +) == s.sampleCount)
        for f in s.folds { #expect(f.slices == s.cases.filter { $0.fold == f.fold }.map(\.slices).reduce(0, +)) }
        // Shards: sizes of the files.
        #expect(s.shards.map(\.file) == index.shards.map(\.file))
        for sh in s.shards { #expect(sh.bytes == (try FileIO.readAll(out + "/" + sh.file).count)) }
        #expect(s.shards.map(\.samples).reduce(0, +) == s.sampleCount)
        #expect(s.mapsSDF && s.mapsRRW && s.mapScales == [1, 2] && s.mapConvention == "boundary" && s.mapUnits == "px")
        #expect(s.normalisationMode == "zscore-foreground")
    }

    @Test func jsonAndText() throws {
        let s = try OutputStatistics.compute(try fx.out3D)
        let j = s.json
        for key in ["output", "dataset", "sample_count", "sample_shape", "classes", "cases", "folds", "shards", "maps", "normalisation"] {
            #expect(j[key] != nil, "\(key)")
        }
        #expect(j["classes"]?.arrayValue?.count == 4 && j["classes"]?.arrayValue?[1]["name"]?.stringValue == "outer")
        #expect(j["shards"]?["count"]?.intValue == s.shards.count && j["maps"]?["scales"] == .ints([1, 2]))
        #expect(j["cases"]?.arrayValue?.first?["class_slices"]?.arrayValue?.count == 4)
        let text = s.text()
        #expect(text.contains("classes (4, ordinal)") && text.contains("outer") && text.contains("%"))
        #expect(text.contains("folds (k = 3, seed 0)") && text.contains("synth_001") && text.contains("zscore-foreground"))
        #expect(s.text(maxCaseRows: 1).contains("... and 1 more cases"))
    }

    @Test func previewSheetsShowImageLabelAndMaps() throws {
        let out = try fx.out3D
        let dir = InspectFixture.tempDir("preview")
        var options = PreviewRenderer.Options()
        options.maxCases = 1
        let r = try PreviewRenderer.render(output: out, to: dir, options: options)
        #expect(r.sheets.map(\.kind) == ["labels", "maps"] && r.mapClass == 1)
        let index = try IndexFile.read(path: out + "/index.json")
        let n = index.cases[0].sliceRange.count
        #expect(r.sheets[0].slices == PreviewRenderer.evenlySpaced(count: n, max: 12) && r.sheets[0].slices.last == n - 1)
        let html = String(decoding: try FileIO.readAll(r.indexFile), as: UTF8.self)
        for sheet in r.sheets {
            #expect(html.contains("src=\"\(sheet.file)\""))
            let png = try PNGCodec.read(path: dir + "/" + sheet.file)
            #expect(png.dims == [sheet.width, sheet.height] && png.channels == 3)
            let px = Self.uint8(png)
            var colours = Set<Int>()
            for i in stride(from: 0, to: px.count, by: 3) {
                let r = Int(px[i]), g = Int(px[i + 1]), b = Int(px[i + 2])
                colours.insert(r << 16 | g << 8 | b)
            }
            func has(_ c: RGBCanvas.RGB) -> Bool { colours.contains(Int(c.0) << 16 | Int(c.1) << 8 | Int(c.2)) }
            if sheet.kind == "labels" {
                // Outlines are drawn opaque in each class colour.
                for k in 1...3 { #expect(has(PreviewColours.label(k)), "class \(k) colour") }
                let darkGrey = colours.contains { c in c & 0xff == c >> 16 && c >> 16 < 40 }
                #expect(darkGrey, "dark grey image pixels")
            } else {
                // RRW is exactly +1 outside the class: the darkest red; the SDF reaches both ends.
                #expect(has(PreviewColours.diverging(1)) && has(PreviewColours.diverging(-1)))
                #expect(has((0, 0, 0)), "class outline")
            }
        }
        // RGB images are shown in colour.
        let rgbDir = InspectFixture.tempDir("preview-rgb")
        let rgb = try PreviewRenderer.render(output: try fx.outColour, to: rgbDir)
        #expect(rgb.sheets.count == 6)
        let px = Self.uint8(try PNGCodec.read(path: rgbDir + "/" + rgb.sheets[0].file))
        let reddish = stride(from: 0, to: px.count, by: 3).contains { Int(px[$0]) > Int(px[$0 + 2]) + 60 }
        #expect(reddish, "reddish skin-like pixels")
    }

    @Test func helpers() {
        let s = PreviewRenderer.evenlySpaced(count: 25, max: 12)
        #expect(s.count == 12 && s.first == 0 && s.last == 24 && zip(s, s.dropFirst()).allSatisfy { $0 < $1 })
        #expect(PreviewRenderer.evenlySpaced(count: 5, max: 12) == [0, 1, 2, 3, 4])
        #expect(PreviewRenderer.evenlySpaced(count: 0, max: 12) == [])
        // numpy.percentile([1, 2, 3, 4, 10], [1, 50, 99]) == [1.04, 3.0, 9.76]
        let v: [Float] = [1, 2, 3, 4, 10]
        #expect(abs(SliceDrawing.percentile(sorted: v, 1) - 1.04) < 1e-5)
        #expect(SliceDrawing.percentile(sorted: v, 50) == 3)
        #expect(abs(SliceDrawing.percentile(sorted: v, 99) - 9.76) < 1e-5)
        #expect(sameTriple(PreviewColours.diverging(-1), (5, 48, 97)) && sameTriple(PreviewColours.diverging(0), (247, 247, 247)))
        #expect(sameTriple(PreviewColours.diverging(1), (103, 0, 31)) && sameTriple(PreviewColours.diverging(7), (103, 0, 31)))
        let small = PreviewRenderer.displaySize(height: 12, width: 16), large = PreviewRenderer.displaySize(height: 512, width: 256)
        #expect(small.height == 144 && small.width == 192)
        #expect(large.height == 256 && large.width == 128)
        // Every glyph is 7 rows of 5 pixels, and the printable ASCII we use is covered.
        for (_, g) in BitmapFont.glyphs { #expect(g.count == 7 && g.allSatisfy { $0 < 32 }) }
        for c in "abcxyzABCXYZ0123456789 .,:-_/=()[]+%'" { #expect(BitmapFont.glyphs[c] != nil, "\(c)") }
        var canvas = RGBCanvas(width: 40, height: 10, fill: (0, 0, 0))
        #expect(canvas.text("Hi", x: 0, y: 0, scale: 1, (255, 255, 255)) == 12)
        #expect(sameTriple(canvas[0, 0], (255, 255, 255)) && sameTriple(canvas[1, 0], (0, 0, 0)))
    }

    @Test func damagedOrMissingOutputsThrowNamedErrors() throws {
        let fx = try fx
        let d = try InspectFixture.copy(fx.out3D)
        try InspectFixture.mutateFile(InspectFixture.shardPath(d, 1)) { $0.removeLast(50) }
        #expect { _ = try OutputStatistics.compute(d) } throws: { e in
            (e as? MedprepError)?.path?.hasSuffix("shard-00001.safetensors") == true
        }
        try FileManager.default.removeItem(atPath: d + "/index.json")
        #expect { _ = try OutputStatistics.compute(d) } throws: { e in (e as? MedprepError)?.message.contains("not a medprep convert output") == true }
        #expect(throws: MedprepError.self) { _ = try PreviewRenderer.render(output: d, to: d + "/preview") }
        // Parts only: say to merge.
        let parts = InspectFixture.tempDir("inspect-parts") + "/out"
        try InspectFixture.convert(fx.data2D, to: parts, part: (0, 1))
        #expect { _ = try OutputStatistics.compute(parts) } throws: { e in (e as? MedprepError)?.message.contains("medprep merge") == true }
        #expect(try OutputStatistics.compute(parts + "/parts/0-of-1").part?.count == 1)
    }
}
