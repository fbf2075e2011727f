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
        let journal = JSON.object([("fingerprint", .string("fp")),
                                   ("shards", .array([.object([("file", .string(file)), ("sha256", .string(String(repeating: "0", count: 64)))])]))])
        try FileIO.writeAtomically(Array(journal.serialized().utf8), to: dir + "/" + OutputFiles.journal)
        do {
            _ = try Journal.load(dir: dir, fingerprint: "fp", resume: true)
            Issue.record("journal naming '\(file)' was accepted")
        } catch let e as MedprepError {
            #expect(e.code == .mismatch && e.message.contains("not a file of the output folder"), "\(e)")
        }
    }
}
