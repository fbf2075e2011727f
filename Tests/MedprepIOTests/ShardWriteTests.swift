#if canImport(Glibc)
import Glibc
#endif
import CMedprep
import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepIO

/// Shard files written with O_DIRECT from an aligned buffer, and its fallback to ordinary writes:
/// the file must hold exactly the bytes the buffered writer writes.
@Suite struct DirectWriteTests {
    /// Directories to write into: a normal one, and tmpfs where there is one.
    static let directories: [String] = ["tmp"] + (FileIO.exists("/dev/shm") ? ["/dev/shm"] : [])

    /// Whether the filesystem holding `dir` accepts O_DIRECT at all (asked directly, not through medprep).
    static func acceptsDirect(_ dir: String) -> Bool {
        let probe = dir + "/probe-\(UUID().uuidString)"
        let fd = open(probe, O_WRONLY | O_CREAT | mp_o_direct_flag(), 0o644)
        if fd >= 0 { close(fd) }
        unlink(probe)
        return fd >= 0
    }

    static func withDirectory(_ name: String, _ body: (String) throws -> Void) throws {
        let dir = name == "tmp" ? try SafetensorsFixtures.tempDir() : name + "/medprep-direct-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ $0 >> 8) } }

    @Test(arguments: directories)
    func sameBytesAsBufferedWrites(_ where_: String) throws {
        try Self.withDirectory(where_) { dir in
            let direct = Self.acceptsDirect(dir)
            for count in [0, 1, 4095, 4096, 4097, 3 * 4096 + 123] {
                let bytes = Self.pattern(count)
                let buffer = AlignedBuffer(capacity: count)
                bytes.withUnsafeBytes { if let p = $0.baseAddress { buffer.base.copyMemory(from: p, byteCount: count) } }
                try FileIO.writeAtomically(bytes, to: dir + "/buffered")
                for refusal in [FileIO.DirectRefusal.none, .atOpen, .atWrite] {
                    let path = dir + "/direct"
                    let method = try FileIO.writeAtomically(buffer, count: count, to: path, overwrite: true, refusal: refusal)
                    #expect(method == (refusal == .none && direct ? .direct : .buffered), "\(count) bytes, \(refusal)")
                    #expect(try FileIO.readAll(path) == bytes, "\(count) bytes, \(refusal)")
                    #expect(try FileIO.readAll(path) == (try FileIO.readAll(dir + "/buffered")))
                }
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["buffered", "direct"])
        }
    }

    @Test func errorsNameTheFile() throws {
        try Self.withDirectory("tmp") { dir in
            let buffer = AlignedBuffer(capacity: 10)
            try FileIO.writeAtomically(buffer, count: 10, to: dir + "/a")
            let exists = #expect(throws: MedprepError.self) { try FileIO.writeAtomically(buffer, count: 10, to: dir + "/a", overwrite: false) }
            #expect(exists?.path == dir + "/a")
            let missing = #expect(throws: MedprepError.self) { try FileIO.writeAtomically(buffer, count: 10, to: dir + "/missing/b") }
            #expect(missing?.path == dir + "/missing/b" && missing?.message.contains("cannot create") == true)
        }
    }
}

/// ShardBuilder keeps one file image per layout and reuses it shard after shard; a short last
/// shard, a header that was not foreseen and growth past the capacity all move data in place.
/// Oracle: the same samples through SafetensorsWriter, tensors built here from the docs' table.
@Suite struct ShardBufferReuseTests {
    static func reference(_ samples: [ShardSample], _ l: ShardLayout, shardIndex: Int, version: String = "t") throws -> [UInt8] {
        let n = samples.count
        var w = SafetensorsWriter(metadata: ["format": "medprep-shard", "format_version": "1", "shard_index": String(shardIndex),
                                             "sample_count": String(n), "medprep_version": version])
        let image = samples.flatMap(\.image)
        if l.imageDType == .float32 {
            try w.add("image", image, shape: [n, l.channels, l.height, l.width])
        } else {
            try w.add("image", SafetensorsTensor.float16(image, shape: [n, l.channels, l.height, l.width]))
        }
        if l.labelDType == .U8 {
            try w.add("label", samples.flatMap { $0.label.map { UInt8($0) } }, shape: [n, l.height, l.width])
        } else {
            try w.add("label", samples.flatMap(\.label), shape: [n, l.height, l.width])
        }
        for m in l.mapTensors {
            let size = l.mapSize(scale: m.scale)
            try w.add(m.name, samples.flatMap { (m.kind == "sdf" ? $0.sdf : $0.rrw)[m.scale]! }, shape: [n, l.classCount, size.height, size.width])
        }
        try w.add("case_index", samples.map { Int32($0.caseIndex) }, shape: [n])
        try w.add("slice_index", samples.map { Int32($0.sliceIndex) }, shape: [n])
        try w.add("slice_count", samples.map { Int32($0.sliceCount) }, shape: [n])
        try w.add("position", samples.map { Double($0.sliceIndex + 1) / Double($0.sliceCount) }, shape: [n])
        try w.add("slice_coord_mm", samples.map(\.sliceCoordMM), shape: [n])
        try w.add("pcl_partition", samples.map { UInt8(4 * $0.sliceIndex / $0.sliceCount + 1) }, shape: [n])
        try w.add("class_presence", samples.flatMap { s in (0..<l.classCount).map { k in s.label.contains(UInt16(k)) ? UInt8(1) : 0 } },
                  shape: [n, l.classCount])
        return w.serialize()
    }

    static func samples(_ l: ShardLayout, count: Int) -> [ShardSample] {
        (0..<count).map { i in
            ShardBuilderTests.sample(l, case: i / 3, slice: i % 3, of: 3, label: UInt16(i % l.classCount))
        }
    }

    /// Shards of 3, 3 and 2 samples from one builder; indices crossing 9 → 10 and 99 → 100 may
    /// change the header's length, and a wrong first-index hint is corrected by moving (8 more
    /// digits always lengthen the padded header).
    @Test(arguments: [(0, 0), (8, 8), (98, 98), (0, 99), (0, 100_000_000)])
    func shardsOfDifferentSizesReuseTwoBuffers(_ hint: Int, _ first: Int) throws {
        let l = try ShardBuilderTests.layout()
        let all = Self.samples(l, count: 8)
        let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: 3, firstShardIndex: hint)
        var buffers: [ObjectIdentifier] = []
        var next = 0
        for (k, size) in [3, 3, 2].enumerated() {
            for s in all[next..<(next + size)] { try b.append(s) }
            let sealed = try b.seal(shardIndex: first + k)
            #expect(b.count == 0)
            #expect(sealed.withBytes { Array($0) } == (try Self.reference(Array(all[next..<(next + size)]), l, shardIndex: first + k)), "shard \(first + k)")
            buffers.append(ObjectIdentifier(sealed.buffer))
            b.recycle(sealed)
            next += size
        }
        #expect(buffers[0] == buffers[2] && buffers[0] != buffers[1])
    }

    /// Capacity 0 (and appending past the capacity) grows the image, keeping what was appended.
    @Test(arguments: [(ShardLayout.ImageDType.float32, 3, 0), (.float16, 300, 2)])
    func growthKeepsTheSamples(_ dtype: ShardLayout.ImageDType, _ k: Int, _ capacity: Int) throws {
        let l = try ShardBuilderTests.layout(dtype, k: k)
        let all = Self.samples(l, count: 5)
        let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: capacity)
        for s in all { try b.append(s) }
        #expect(try b.makeWriter(shardIndex: 4).serialize() == (try Self.reference(all, l, shardIndex: 4)))
        #expect(try b.seal(shardIndex: 4).withBytes { Array($0) } == (try Self.reference(all, l, shardIndex: 4)))
    }

    /// Convert's pattern: a shard is written on another thread while the next one fills.
    @Test func sealedShardIsWrittenWhileTheNextFills() throws {
        let l = try ShardBuilderTests.layout()
        let all = Self.samples(l, count: 6)
        let dir = try SafetensorsFixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: 3)
        for s in all[0..<3] { try b.append(s) }
        let first = try b.seal(shardIndex: 0)
        for s in all[3..<6] { try b.append(s) }
        let second = try b.seal(shardIndex: 1)
        let records = try [first, second].map { try $0.write(directory: dir, firstSample: 3 * $0.shardIndex) }
        for (i, r) in records.enumerated() {
            let expected = try Self.reference(Array(all[(3 * i)..<(3 * i + 3)]), l, shardIndex: i)
            #expect(try FileIO.readAll(dir + "/" + r.file) == expected)
            #expect(r.sha256 == SHA256.hex(expected) && r.bytes == expected.count && r.firstSample == 3 * i && r.sampleCount == 3)
        }
    }

    /// Convert's path: samples appended in runs with their maps written in place by `fillMaps`
    /// (here copied from maps the samples would otherwise carry) give the bytes of the serialiser
    /// fed with the complete samples, for 1 and 2 threads; sdf and rrw differ so a swap shows.
    @Test(arguments: [1, 2])
    func mapsFilledInPlaceMatchGivenMaps(_ threads: Int) throws {
        let l = try ShardBuilderTests.layout(k: 3)
        let full = Self.samples(l, count: 5).enumerated().map { i, s0 in
            var s = s0
            s.rrw = s.sdf.mapValues { $0.map { $0 + 1000 + Float(i) } }
            return s
        }
        let bare = full.map { s0 in
            var s = s0
            s.sdf = [:]; s.rrw = [:]
            return s
        }
        let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: 5)
        for run in [0..<2, 2..<5] {
            let given = Array(full[run])
            try b.append(Array(bare[run]), threads: threads) { j, slots in
                for (scale, values) in given[j].sdf { slots.sdf[scale]!.update(from: values, count: values.count) }
                for (scale, values) in given[j].rrw { slots.rrw[scale]!.update(from: values, count: values.count) }
            }
        }
        #expect(b.count == 5)
        #expect(try b.seal(shardIndex: 0).withBytes { Array($0) } == (try Self.reference(full, l, shardIndex: 0)))
    }

    /// A run with a bad sample, or whose map filling fails, appends nothing and names the sample.
    @Test func aFailingRunAppendsNothing() throws {
        let l = try ShardBuilderTests.layout(k: 3)
        let full = Self.samples(l, count: 3)
        var bare = full.map { s0 in
            var s = s0
            s.sdf = [:]; s.rrw = [:]
            return s
        }
        let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: 3)
        @Sendable func copyMaps(_ j: Int, _ slots: ShardBuilder.MapSlots) {
            for (scale, values) in full[j].sdf { slots.sdf[scale]!.update(from: values, count: values.count) }
            for (scale, values) in full[j].rrw { slots.rrw[scale]!.update(from: values, count: values.count) }
        }
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            try b.append(bare, threads: 2) { j, slots in
                if j == 1 { throw Refused() }
                copyMaps(j, slots)
            }
        }
        #expect(b.count == 0)
        var bad = bare
        bad[2].label[4] = 3  // not below K = 3
        let e = #expect(throws: MedprepError.self) { try b.append(bad, threads: 2) { j, slots in copyMaps(j, slots) } }
        #expect(e?.message.contains("case 0 slice 2: label value '3'") == true)
        bare[1].sdf = full[1].sdf  // maps given and filled in place: refused
        #expect(throws: MedprepError.self) { try b.append(bare, threads: 1) { j, slots in copyMaps(j, slots) } }
        #expect(b.count == 0)
        bare[1].sdf = [:]
        try b.append(bare, threads: 2) { j, slots in copyMaps(j, slots) }
        #expect(try b.seal(shardIndex: 0).withBytes { Array($0) } == (try Self.reference(full, l, shardIndex: 0)))
    }
}
