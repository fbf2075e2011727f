import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth
@testable import MedprepIO

/// Tiny converted outputs shared by VerifyTests and InspectTests (made once; tests that damage
/// an output work on a copy).
enum InspectFixture {
    struct Outputs: Sendable {
        var root: String
        var data3D: String, data2D: String, dataColour: String
        var out3D: String, out2D: String, outColour: String
    }

    static let shared: Result<Outputs, Error> = Result { try make() }

    /// Everything these tests write lives under one folder, removed when the test process exits.
    static let runRoot: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-inspect-tests-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: InspectFixture.runRoot) }
        return d
    }()

    static func tempDir(_ tag: String) -> String {
        let d = runRoot + "/\(tag)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static func make() throws -> Outputs {
        let root = tempDir("fixture")
        var opts = Synth.Options()
        opts.cases3D = 2; opts.cases2D = 3; opts.size3D = [24, 20, 6]; opts.size2D = [16, 12]
        let dirs = try Synth.write(to: root + "/data", options: opts)
        // Smaller slices and shards than the shipped manifests: several shards, fast maps.
        // The 3D set stores its maps densely (the map checks need map tensors); the default is online.
        try patch(dirs[0] + "/manifest.yaml", [("size: [80, 80]", "size: [24, 24]"), ("shard_size: 32", "shard_size: 4"),
                                               ("scales: [1, 2]}", "scales: [1, 2], storage: dense}")])
        try patch(dirs[1] + "/manifest.yaml", [("shard_size: 16", "shard_size: 2")])
        try patch(dirs[2] + "/manifest.yaml", [("shard_size: 16", "shard_size: 2")])
        let outs = [root + "/out3d", root + "/out2d", root + "/outcolour"]
        for (d, o) in zip(dirs, outs) { try convert(d, to: o) }
        return Outputs(root: root, data3D: dirs[0], data2D: dirs[1], dataColour: dirs[2], out3D: outs[0], out2D: outs[1], outColour: outs[2])
    }

    static func convert(_ data: String, to out: String, part: (Int, Int)? = nil) throws {
        var o = ConvertOptions(datasetRoot: data, output: out)
        o.jobs = 2
        o.part = part
        _ = try ConvertRun(options: o).run()
    }

    static func patch(_ path: String, _ edits: [(String, String)]) throws {
        var text = String(decoding: try FileIO.readAll(path), as: UTF8.self)
        for (a, b) in edits {
            precondition(text.contains(a), "\(path) has no '\(a)'")
            text = text.replacingOccurrences(of: a, with: b)
        }
        try FileIO.writeAtomically(Array(text.utf8), to: path)
    }

    /// A fresh copy of an output folder to damage.
    static func copy(_ out: String) throws -> String {
        let d = tempDir("copy") + "/out"
        try FileManager.default.copyItem(atPath: out, toPath: d)
        return d
    }

    static func readIndex(_ dir: String) throws -> JSON {
        try StrictJSON.parse(FileIO.readAll(dir + "/index.json")).value
    }

    static func writeIndex(_ dir: String, _ j: JSON) throws {
        try FileIO.writeAtomically(Array(j.serialized(indent: 2).utf8), to: dir + "/index.json")
    }

    /// Edits index.json: sets (or with nil removes) the value at a path of keys and indices.
    static func editIndex(_ dir: String, _ edits: [([PathItem], JSON?)]) throws {
        var j = try readIndex(dir)
        for (path, v) in edits { j = setting(j, path[...], v) }
        try writeIndex(dir, j)
    }

    enum PathItem: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        case key(String), index(Int)
        init(stringLiteral s: String) { self = .key(s) }
        init(integerLiteral i: Int) { self = .index(i) }
    }

    static func setting(_ j: JSON, _ path: ArraySlice<PathItem>, _ v: JSON?) -> JSON {
        guard let head = path.first else { return v ?? .null }
        switch (j, head) {
        case (.object(var members), .key(let k)):
            if let i = members.firstIndex(where: { $0.0 == k }) {
                if path.count == 1 && v == nil { members.remove(at: i) } else { members[i].1 = setting(members[i].1, path.dropFirst(), v) }
            } else if let v, path.count == 1 {
                members.append((k, v))
            }
            return .object(members)
        case (.array(var items), .index(let i)):
            if path.count == 1 && v == nil { items.remove(at: i) } else { items[i] = setting(items[i], path.dropFirst(), v) }
            return .array(items)
        default:
            return j
        }
    }

    /// Rewrites index.json's sha256 and bytes of shard `k` to match the file (after a deliberate
    /// edit that should be caught by something other than the checksum).
    static func rehash(_ dir: String, shard k: Int) throws {
        let j = try readIndex(dir)
        let file = j["shards"]!.arrayValue![k]["file"]!.stringValue!
        let bytes = try FileIO.readAll(dir + "/" + file)
        try editIndex(dir, [(["shards", .index(k), "sha256"], .string(SHA256.hex(bytes))),
                            (["shards", .index(k), "bytes"], .int(bytes.count))])
    }

    static func shardPath(_ dir: String, _ k: Int) -> String { dir + "/" + ShardLayout.fileName(shardIndex: k) }

    static func mutateFile(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
        var b = try FileIO.readAll(path)
        body(&b)
        try FileIO.writeAtomically(b, to: path)
    }
}

extension VerifyReport {
    /// True when some problem is in a file ending with `file` and its message holds every fragment.
    func has(_ file: String, _ fragments: String...) -> Bool {
        problems.contains { p in p.file.hasSuffix(file) && fragments.allSatisfy { p.message.contains($0) } }
    }

    var listing: String { problems.map(\.description).joined(separator: "\n") }
}

@Suite struct VerifyTests {
    var fx: InspectFixture.Outputs { get throws { try InspectFixture.shared.get() } }

    @Test func cleanOutputsVerify() throws {
        for out in [try fx.out3D, try fx.out2D, try fx.outColour] {
            let r = OutputVerifier.verify(out)
            #expect(r.ok, "\(out):\n\(r.listing)")
            #expect(r.notes.isEmpty, "\(r.notes)")
            let index = try IndexFile.read(path: out + "/index.json")
            #expect(r.checked.indexes == 1 && r.checked.parts == 0)
            #expect(r.checked.shards == index.shards.count && r.checked.shards >= 2)
            #expect(r.checked.samples == index.sampleCount && r.checked.cases == index.cases.count && r.checked.classes == 4)
            let bytes = try index.shards.reduce(0) { $0 + (try FileIO.readAll(out + "/" + $1.file).count) }
            #expect(r.checked.bytes == bytes)
            let j = r.json
            #expect(j["ok"] == .bool(true) && j["problems"] == .array([]) && j["checked"]?["shards"]?.intValue == index.shards.count)
        }
        // The index.json path itself is accepted as OUT.
        #expect(OutputVerifier.verify(try fx.out2D + "/index.json").ok)
    }

    @Test func documentedExampleIndexHasTheSchemaStructure() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/safetensors/example-index.json").path
        let j = try StrictJSON.parse(FileIO.readAll(path)).value
        #expect(IndexSchema.check(j) == [])
        // And every converted index does too.
        for out in [try fx.out3D, try fx.outColour] { #expect(IndexSchema.check(try InspectFixture.readIndex(out)) == []) }
    }

    @Test func indexStructureProblemsAreNamed() throws {
        let d = try InspectFixture.copy(try fx.out2D)
        try InspectFixture.editIndex(d, [
            (["extra"], .int(1)),
            (["folds"], nil),
            (["format_version"], .int(2)),
            (["cases", 0, "fold"], .string("a")),
            (["classes", 1, "source_values"], nil),
            (["maps", "units"], .string("cm")),
            (["manifest_sha256"], .string("ABC")),
            (["cases", 1, "original_geometry", "orientation"], .string("RASX")),
            (["shards", 0, "file"], .string("../shard-00000.safetensors")),
        ])
        let r = OutputVerifier.verify(d)
        #expect(!r.ok)
        #expect(r.has("index.json", "unknown key 'extra'"))
        #expect(r.has("index.json", "has no 'folds'"))
        #expect(r.has("index.json", "format_version is '2'", "expected '1'"))
        #expect(r.has("index.json", "cases[0].fold is 'a'", "expected an integer >= 0"))
        #expect(r.has("index.json", "classes[1] has neither 'source_values' nor 'colours'"))
        #expect(r.has("index.json", "maps.units is 'cm'", "'px', 'mm'"))
        #expect(r.has("index.json", "manifest_sha256 is 'ABC'", "64 lower-case hex digits"))
        #expect(r.has("index.json", "cases[1].original_geometry.orientation is 'RASX'"))
        #expect(r.has("index.json", "shards[0].file is '../shard-00000.safetensors'"))

        // Duplicate keys (which a JSON parser resolves silently).
        let e = try InspectFixture.copy(try fx.out2D)
        try InspectFixture.patch(e + "/index.json", [("\"ordinal\": true", "\"ordinal\": true, \"ordinal\": false")])
        #expect(OutputVerifier.verify(e).has("index.json", "key 'ordinal' appears twice"))
        // Numbers too large for an integer are reported, not wrapped or trapped on.
        try InspectFixture.editIndex(e, [(["sample_count"], .number(1e30))])
        #expect(OutputVerifier.verify(e).has("index.json", "sample_count is '1e+30'", "expected an integer"))
    }

    @Test func checksumsSizesAndMissingShards() throws {
        let d = try InspectFixture.copy(try fx.out3D)
        let index = try IndexFile.read(path: d + "/index.json")
        try InspectFixture.mutateFile(InspectFixture.shardPath(d, 1)) { $0[$0.count / 2] ^= 0x40 }  // image data
        try InspectFixture.mutateFile(InspectFixture.shardPath(d, 2)) { $0.removeLast(100) }
        try FileManager.default.removeItem(atPath: InspectFixture.shardPath(d, 3))
        try InspectFixture.editIndex(d, [(["shards", 0, "sha256"], .string(String(repeating: "0", count: 64)))])
        let r = OutputVerifier.verify(d)
        #expect(r.has("shard-00000.safetensors", "sha256 is '\(index.shards[0].sha256)'", "says '0000"))
        #expect(r.has("shard-00001.safetensors", "sha256 is"))
        #expect(r.problems.filter { $0.file.hasSuffix("shard-00001.safetensors") }.count == 1, "\(r.listing)")
        #expect(r.has("shard-00002.safetensors", "is \(index.shards[2].bytes - 100) bytes", "says '\(index.shards[2].bytes)'"))
        #expect(r.has("shard-00002.safetensors", "tensor data needs"))
        #expect(r.has("shard-00003.safetensors", "file not found"))
    }

    @Test func damagedShardsAreReportedNotFatal() throws {
        let d = try InspectFixture.copy(try fx.out3D)
        let original = try FileIO.readAll(InspectFixture.shardPath(d, 0))
        var huge = original
        huge.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        var cutHeader = original
        cutHeader.removeSubrange(20...)
        var rng = SplitMix64(seed: 7)
        let garbage = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var badJSON = original
        badJSON[9] = UInt8(ascii: "[")
        var dtype = original
        let text = String(decoding: original[8..<min(original.count, 2000)], as: UTF8.self)
        if let r = text.range(of: "\"I32\"") {
            let off = 8 + text.utf8.distance(from: text.utf8.startIndex, to: r.lowerBound.samePosition(in: text.utf8)!)
            dtype.replaceSubrange((off + 1)..<(off + 4), with: Array("U32".utf8))
        }
        for (name, bytes) in [("empty", [UInt8]()), ("seven bytes", Array(original.prefix(7))), ("huge header", huge),
                              ("cut header", cutHeader), ("garbage", garbage), ("bad json", badJSON), ("dtype", dtype)] {
            try FileIO.writeAtomically(bytes, to: InspectFixture.shardPath(d, 0))
            let r = OutputVerifier.verify(d)
            #expect(!r.ok, "\(name)")
            #expect(r.problems.contains { $0.file.hasSuffix("shard-00000.safetensors") && !$0.message.contains("sha256") && !$0.message.hasPrefix("is ") },
                    "\(name): \(r.listing)")
        }
    }

    @Test func randomDamageNeverCrashes() throws {
        let d = try InspectFixture.copy(try fx.out2D)
        let indexBytes = try FileIO.readAll(d + "/index.json")
        let shard = try FileIO.readAll(InspectFixture.shardPath(d, 0))
        var rng = SplitMix64(seed: 42)
        // Truncated index: never valid.
        for cut in stride(from: 0, to: indexBytes.count, by: max(1, indexBytes.count / 25)) {
            try FileIO.writeAtomically(Array(indexBytes.prefix(cut)), to: d + "/index.json")
            let r = OutputVerifier.verify(d)
            #expect(!r.ok && r.has("index.json"), "cut at \(cut)")
        }
        // Flipped bytes in the index: must not crash (some flips inside strings stay valid).
        for _ in 0..<40 {
            var b = indexBytes
            b[Int(rng.next() % UInt64(b.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            try FileIO.writeAtomically(b, to: d + "/index.json")
            _ = OutputVerifier.verify(d)
        }
        try FileIO.writeAtomically(indexBytes, to: d + "/index.json")
        // Flipped bytes in a shard, header or data: always caught (the checksum at least).
        for n in 0..<40 {
            var b = shard
            let at = n % 2 == 0 ? Int(rng.next() % 1000) : Int(rng.next() % UInt64(b.count))
            b[at] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            try FileIO.writeAtomically(b, to: InspectFixture.shardPath(d, 0))
            #expect(!OutputVerifier.verify(d).ok)
            // With the checksum updated, a damaged header is still refused and damaged data never crashes.
            try InspectFixture.rehash(d, shard: 0)
            let r = OutputVerifier.verify(d)
            if at < 8 { #expect(!r.ok) }
            try FileIO.writeAtomically(indexBytes, to: d + "/index.json")
        }
    }

    @Test func crossFileRules() throws {
        let base = try fx.out3D
        let index = try IndexFile.read(path: base + "/index.json")
        let cases = index.cases
        func check(_ edits: [([InspectFixture.PathItem], JSON?)], _ file: String, _ fragments: String...) throws {
            let d = try InspectFixture.copy(base)
            try InspectFixture.editIndex(d, edits)
            let r = OutputVerifier.verify(d)
            #expect(!r.ok)
            #expect(r.problems.contains { p in p.file.hasSuffix(file) && fragments.allSatisfy { p.message.contains($0) } },
                    "\(edits.map { "\($0.0)" }) expected \(fragments) in:\n\(r.listing)")
        }
        let n0 = cases[0].sliceRange.count
        // A case's range one too long: its last sample belongs to the next case.
        try check([(["cases", 0, "slice_range", "count"], .int(n0 + 1))], ".safetensors", "case 'synth_000'", "slice_count \(n0), expected \(n0 + 1)")
        try check([(["cases", 0, "slice_range", "count"], .int(n0 + 1))], "index.json", "cases[1] ('synth_001').slice_range.first_sample is '\(n0)', expected \(n0 + 1)")
        try check([(["cases", 1, "fold"], .int(3))], "index.json", "cases[1] ('synth_001').fold is '3', expected 0..<3")
        try check([(["shards", 1, "first_sample"], .int(5))], "index.json", "shards[1].first_sample is '5', expected 4")
        try check([(["sample_count"], .int(index.sampleCount + 1))], "index.json", "sample_count is '\(index.sampleCount + 1)' but the shards hold \(index.sampleCount)")
        try check([(["cases", 1, "id"], .string("synth_000"))], "index.json", "cases[1] ('synth_000').id is also cases[0]'s")
        // case_index may have gaps (skipped cases, parts) but must increase and match the shards.
        try check([(["cases", 1, "case_index"], .int(7))], ".safetensors", "case 'synth_001'", "has case_index 1, expected 7")
        try check([(["cases", 1, "case_index"], .int(0))], "index.json", "cases[1] ('synth_001').case_index is '0', expected more than the previous case's 0")
        try check([(["classes", 3], nil)], "shard-00000.safetensors", "K = 4 classes", "lists 3")
        try check([(["maps", "scales"], .ints([1]))], "shard-00000.safetensors", "maps at scales [1, 2]", "says [1]")
        try check([(["maps", "rrw"], .bool(false))], "shard-00000.safetensors", "'rrw' tensors but index.json says none are stored")
        // An online index must have no map tensors; a compact one compact tensors; dtypes as said.
        try check([(["maps", "storage"], .string("online"))], "shard-00000.safetensors",
                  "'sdf' tensors but index.json says none are stored (maps.storage 'online')")
        try check([(["maps", "storage"], .string("compact"))], "shard-00000.safetensors",
                  "dense [N, K, h, w] map tensors, index.json maps.storage is 'compact'")
        try check([(["maps", "dtype"], .string("float16"))], "shard-00000.safetensors", "map tensors are F32, index.json maps.dtype is 'float16'")
        try check([(["parameters", "dtypes", "image"], .string("float16"))], "shard-00000.safetensors", "'image' is F32", "'float16'")
        try check([(["parameters", "geometry", "size"], .ints([24, 25]))], "shard-00000.safetensors", "24x24 slices", "[24, 25]")
        try check([(["medprep_version"], .string("9.9.9"))], "shard-00000.safetensors", "medprep_version is '0.1.0'", "'9.9.9'")
        // The last case dropped from the index: its samples belong to no case.
        try check([(["cases", 1], nil)], ".safetensors", "has case_index 1, which no case in index.json has", "samples)")
        try check([(["cases", 1], nil)], "index.json", "end at sample \(n0) but sample_count is '\(index.sampleCount)'")
        // Shards listed in another order: shard_index and tiling.
        let d = try InspectFixture.copy(base)
        let j = try InspectFixture.readIndex(d)
        var shards = j["shards"]!.arrayValue!
        shards.swapAt(0, 1)
        try InspectFixture.editIndex(d, [(["shards"], .array(shards))])
        let r = OutputVerifier.verify(d)
        #expect(r.has("shard-00001.safetensors", "shard_index is '1', expected 0"))
        #expect(r.has("index.json", "shards[0].first_sample is '4', expected 0."))
    }

    @Test func slicesOutOfOrderInsideAShard() throws {
        // Swap slices 0 and 1 of case 0 (slice_index and position, so the shard on its own is
        // still valid), and fix the checksum: only the cross-file check can see it.
        let d = try InspectFixture.copy(try fx.out3D)
        let path = InspectFixture.shardPath(d, 0)
        let file = try SafetensorsReader.read(path: path)
        let si = try file.info("slice_index"), pos = try file.info("position")
        try InspectFixture.mutateFile(path) { b in
            let s = file.header.dataStart + si.begin, p = file.header.dataStart + pos.begin
            for i in 0..<4 { b.swapAt(s + i, s + 4 + i) }
            for i in 0..<8 { b.swapAt(p + i, p + 8 + i) }
        }
        try InspectFixture.rehash(d, shard: 0)
        let r = OutputVerifier.verify(d)
        #expect(r.problems.count == 1, "\(r.listing)")
        #expect(r.has("shard-00000.safetensors", "case 'synth_000'", "sample 0 (row 0) has slice_index 1, expected 0", "2 of the case's"))

        // A shard row claiming another case.
        let e = try InspectFixture.copy(try fx.out3D)
        let epath = InspectFixture.shardPath(e, 0)
        let ci = try file.info("case_index")
        try InspectFixture.mutateFile(epath) { b in b[file.header.dataStart + ci.begin + 4 * 2] = 1 }
        try InspectFixture.rehash(e, shard: 0)
        #expect(OutputVerifier.verify(e).has("shard-00000.safetensors", "sample 2 (row 2) has case_index 1, expected 0"))

        // pcl_partition and class_presence must be exactly what the label and slice say.
        let f = try InspectFixture.copy(try fx.out3D)
        let fpath = InspectFixture.shardPath(f, 0)
        let pcl = try file.info("pcl_partition"), presence = try file.info("class_presence")
        let presenceValues = try file.values("class_presence", as: UInt8.self)
        try InspectFixture.mutateFile(fpath) { b in
            b[file.header.dataStart + pcl.begin] = 2
            b[file.header.dataStart + presence.begin + 3] = presenceValues[3] == 0 ? 1 : 0
        }
        try InspectFixture.rehash(f, shard: 0)
        let rf = OutputVerifier.verify(f)
        #expect(rf.has("shard-00000.safetensors", "pcl_partition is 2, expected floor(4i/N)+1 = 1"))
        #expect(rf.has("shard-00000.safetensors", "class_presence[3] is"))
    }

    @Test func strayFilesInTheOutput() throws {
        let d = try InspectFixture.copy(try fx.out2D)
        try FileManager.default.copyItem(atPath: InspectFixture.shardPath(d, 0), toPath: InspectFixture.shardPath(d, 99))
        try FileIO.writeAtomically([1], to: d + "/" + OutputFiles.journal)
        try FileIO.writeAtomically([1], to: d + "/index.json.tmp-123")
        let r = OutputVerifier.verify(d)
        #expect(r.has("shard-00099.safetensors", "not listed in index.json"))
        #expect(r.has(OutputFiles.journal, "journal"))
        #expect(r.has("index.json.tmp-123", "temporary file"))
    }

    @Test func partsAreVerifiedAndMergeIsSuggested() throws {
        let fx = try fx
        let out = InspectFixture.tempDir("parts") + "/out"
        try InspectFixture.convert(fx.data2D, to: out, part: (0, 2))
        try InspectFixture.convert(fx.data2D, to: out, part: (1, 2))
        let r = OutputVerifier.verify(out)
        #expect(r.ok, "\(r.listing)")
        #expect(r.checked.parts == 2 && r.checked.indexes == 2 && r.checked.cases == 3)
        #expect(r.notes.contains { $0.contains("medprep merge \(out)") })
        // A damaged part is reported under its own folder.
        try InspectFixture.mutateFile(out + "/parts/1-of-2/" + ShardLayout.fileName(shardIndex: 0)) { $0[$0.count / 2] ^= 1 }
        #expect(OutputVerifier.verify(out).has("parts/1-of-2/shard-00000.safetensors", "sha256"))
        // A missing part.
        try FileManager.default.removeItem(atPath: out + "/parts/1-of-2")
        #expect(OutputVerifier.verify(out).has("parts/1-of-2", "part 1 of 2 has not been converted"))

        // After 'medprep merge' (which lists the parts' shards in place) the output verifies.
        let merged = InspectFixture.tempDir("merged") + "/out"
        try InspectFixture.convert(fx.data2D, to: merged, part: (0, 2))
        try InspectFixture.convert(fx.data2D, to: merged, part: (1, 2))
        _ = try Merge.run(output: merged, force: false)
        let m = OutputVerifier.verify(merged)
        #expect(m.ok, "\(m.listing)")
        #expect(m.checked.cases == 3 && m.notes.isEmpty)
    }

    @Test func notAnOutput() throws {
        let missing = OutputVerifier.verify("/nonexistent/medprep-out")
        #expect(missing.has("/nonexistent/medprep-out", "no such folder"))
        let empty = InspectFixture.tempDir("empty")
        #expect(OutputVerifier.verify(empty).has("index.json", "not a medprep convert output"))
        try FileIO.writeAtomically(Array("[1, 2]".utf8), to: empty + "/index.json")
        #expect(OutputVerifier.verify(empty).has("index.json", "holds an array, expected a JSON object"))
        try FileIO.writeAtomically(Array("{\"a\": ".utf8), to: empty + "/index.json")
        #expect(OutputVerifier.verify(empty).has("index.json", "is not valid JSON", "line 1"))
        let j = OutputVerifier.verify(empty).json
        #expect(j["ok"] == .bool(false) && j["problems"]?.arrayValue?.first?["file"]?.stringValue == empty + "/index.json")
    }

    @Test func strictJSONParser() throws {
        let (v, dup) = try StrictJSON.parse(Array(#"{"a": [1, -2, 3.5, 1e2, 12345678901234567890], "b": {"c": "\u00e9\ud83d\ude00\n", "c": null}, "d": true}"#.utf8))
        #expect(v["a"] == .array([.int(1), .int(-2), .number(3.5), .number(100), .number(Double("12345678901234567890")!)]))
        #expect(v["b"]?["c"] == .null && v["d"] == .bool(true))
        #expect(dup == ["b.c"])
        #expect(try StrictJSON.parse(Array(#"{"c": "\u00e9\ud83d\ude00"}"#.utf8)).value["c"]?.stringValue == "é😀")
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "\"\\x\"", "[1] 2", "\"\u{01}\"", "tru", "\"\\ud800\"",
                    String(repeating: "[", count: 10_000)] {
            #expect(throws: StrictJSON.ParseError.self, "\(bad.prefix(20))") { _ = try StrictJSON.parse(Array(bad.utf8)) }
        }
    }
}
