#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepValidate
@testable import MedprepInspect
@testable import MedprepConvert
@testable import MedprepSynth
@testable import MedprepIO

/// Shards are written on a writer thread, one in flight: a shard that cannot be written stops
/// the run naming its file, the journal lists only the shards before it (durable), no index.json
/// is written, and --resume then ends with the bytes of an uninterrupted run.
@Suite struct ConvertWriterTests {
    /// (dataset, its finished output, the shard made unwritable): the 3D output's shard 1 fails
    /// while later cases are still placed, the 2D output's shard 1 is its last (partial) shard.
    static func cases() throws -> [(String, String, Int)] {
        let fx = try InspectFixture.shared.get()
        return [(fx.data3D, fx.out3D, 1), (fx.data2D, fx.out2D, 1)]
    }

    @Test(arguments: [0, 1])
    func failedShardWriteStopsTheRunAndResumes(_ which: Int) throws {
        let (data, finished, bad) = try Self.cases()[which]
        let out = InspectFixture.tempDir("writefail") + "/out"
        let name = ShardLayout.fileName(shardIndex: bad)
        // A directory where the shard's temporary file must go: creating the file fails.
        let obstacle = out + "/\(name).tmp-\(getpid())"
        try FileManager.default.createDirectory(atPath: obstacle, withIntermediateDirectories: true)
        var o = ConvertOptions(datasetRoot: data, output: out)
        o.jobs = 1
        o.force = true
        let e = #expect(throws: MedprepError.self) { _ = try ConvertRun(options: o).run() }
        #expect(e?.path == out + "/" + name, "\(e?.description ?? "")")
        #expect(!FileIO.exists(out + "/index.json"))
        let journal = try StrictJSON.parse(FileIO.readAll(out + "/" + OutputFiles.journal)).value
        #expect(journal["shards"]?.arrayValue?.compactMap { $0["file"]?.stringValue } == (0..<bad).map { ShardLayout.fileName(shardIndex: $0) })

        try FileManager.default.removeItem(atPath: obstacle)
        o.force = false
        o.resume = true
        _ = try ConvertRun(options: o).run()
        let files = try FileManager.default.contentsOfDirectory(atPath: finished).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == files)
        for f in files { #expect(try FileIO.readAll(out + "/" + f) == (try FileIO.readAll(finished + "/" + f)), "\(f)") }
    }
}

/// A journal is read on --resume; the shard files it names must be files of the output folder.
@Suite struct JournalPathTests {
    @Test(arguments: ["../outside.safetensors", "/dev/zero", ".hidden", "sub/shard-00000.safetensors"])
    func shardPathsOutsideTheFolderAreRefused(_ file: String) throws {
        let dir = InspectFixture.tempDir("journal-path")
        var journal = Journal(fingerprint: "fp")
        journal.shards = [ShardRecord(file: file, sha256: String(repeating: "0", count: 64), bytes: 100, sampleCount: 1, firstSample: 0)]
        journal.sampleCount = 1
        try journal.save(dir: dir)
        do {
            _ = try Journal.load(dir: dir, fingerprint: "fp", resume: true)
            Issue.record("journal naming '\(file)' was accepted")
        } catch let e as MedprepError {
            #expect(e.code == .mismatch && e.message.contains("not a file of the output folder"), "\(e)")
        }
    }
}

/// A journal that is not one (edited, truncated, from another tool) is refused with a message
/// naming the file and the member at fault; nothing is resumed from it.
@Suite struct JournalDecodingTests {
    @Test(arguments: [
        (#"{"fingerprint": "fp"}"#, "has no 'shards'"),
        (#"{"fingerprint": "fp", "shards": [], "cases": [], "normalisation": [], "skipped": [], "sample_count": 1.5, "cursor_case": 0, "cursor_slice": 0}"#,
         "sample_count: expected an integer"),
        (#"{"fingerprint": "fp", "shards": [{"file": "shard-00000.safetensors"}], "cases": [], "normalisation": [], "skipped": [], "sample_count": 0, "cursor_case": 0, "cursor_slice": 0}"#,
         "shards[0]: has no 'sha256'"),
        (#"{"fingerprint": "fp", "shards": [], "cases": [], "normalisation": [], "skipped": [], "sample_count": 0, "cursor_case": -1, "cursor_slice": 0}"#,
         "negative cursor"),
        (#"[]"#, "expected an object"),
    ])
    func badJournalsAreRefused(text: String, fragment: String) throws {
        let dir = InspectFixture.tempDir("journal-bad")
        try FileIO.writeAtomically(Array(text.utf8), to: dir + "/" + OutputFiles.journal)
        do {
            _ = try Journal.load(dir: dir, fingerprint: "fp", resume: true)
            Issue.record("journal \(text) was accepted")
        } catch let e as MedprepError {
            #expect(e.path == dir + "/" + OutputFiles.journal && e.message.contains(fragment), "\(e)")
        }
    }

    @Test func aSavedJournalLoadsAsItWas() throws {
        let dir = InspectFixture.tempDir("journal-roundtrip")
        var j = Journal(fingerprint: "fp")
        j.skipped = [ShardIndex.SkippedCase(id: "a", reason: "unreadable")]
        j.normalisation = [ShardIndex.CaseNormalisation(caseIndex: 0, channels: [.init(channel: 0, mean: 1, std: 2, foregroundOnly: true)], padValues: [-1])]
        j.cursorCase = 1
        try j.save(dir: dir)
        let back = try Journal.load(dir: dir, fingerprint: "fp", resume: true)
        #expect(back.skipped == j.skipped && back.normalisation == j.normalisation && back.cursorCase == 1 && back.shards.isEmpty)
    }
}
