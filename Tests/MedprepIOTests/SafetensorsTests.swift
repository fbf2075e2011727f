import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepIO

// Oracle: files written by Python's safetensors (tools/fixtures/make_safetensors_fixtures.py),
// described in Tests/Fixtures/safetensors/expected.json. Tensors are rebuilt here from the raw
// bytes in expected.json with a decoder written in this file (not the reader under test).

enum SafetensorsFixtures {
    enum Value: Decodable, Equatable {
        case bool(Bool), int(Int64), uint(UInt64), double(Double)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b); return }
            if let i = try? c.decode(Int64.self) { self = .int(i); return }
            if let u = try? c.decode(UInt64.self) { self = .uint(u); return }
            self = .double(try c.decode(Double.self))
        }
        var double: Double {
            switch self {
            case .bool(let b): b ? 1 : 0
            case .int(let i): Double(i)
            case .uint(let u): Double(u)
            case .double(let d): d
            }
        }
    }

    struct Tensor: Decodable {
        let name: String
        let dtype: String
        let shape: [Int]
        let hex: String
        let values: [Value]?
    }

    struct File: Decodable {
        let metadata: [String: String]?
        let tensors: [Tensor]
        let file_order: [String]
        let sha256: String
        let bytes: Int
    }

    struct Layout: Decodable {
        let channels: Int, height: Int, width: Int, class_count: Int
        let image_dtype: String
        let sdf: Bool, rrw: Bool
        let map_scales: [Int]
    }

    struct Sample: Decodable {
        let image: [Double]
        let label: [Int]
        let sdf: [String: [Double]]
        let rrw: [String: [Double]]
        let case_index: Int, slice_index: Int, slice_count: Int
        let slice_coord_mm: Double
    }

    struct Shard: Decodable {
        let layout: Layout
        let shard_index: Int
        let medprep_version: String
        let samples: [Sample]
    }

    struct Expected: Decodable {
        let files: [String: File]
        let shards: [String: Shard]
    }

    struct HostileSpec: Decodable { let code: String; let rust_rejects: Bool; let why: String }

    static let expected: Expected? = {
        guard let data = try? Data(contentsOf: Fixtures.root.appendingPathComponent("safetensors/expected.json")) else { return nil }
        return try? JSONDecoder().decode(Expected.self, from: data)
    }()

    static let hostile: [String: HostileSpec] = {
        guard let data = try? Data(contentsOf: Fixtures.root.appendingPathComponent("safetensors/hostile/expected_errors.json")),
              let d = try? JSONDecoder().decode([String: HostileSpec].self, from: data) else { return [:] }
        return d
    }()

    static func path(_ rel: String) -> String { Fixtures.path("safetensors/\(rel)") }

    static func bytes(_ rel: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(rel))))
    }

    static func hex(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        return stride(from: 0, to: u.count, by: 2).map { nib(u[$0]) << 4 | nib(u[$0 + 1]) }
    }

    /// Little-endian integers assembled byte by byte.
    static func le<T: FixedWidthInteger>(_ b: [UInt8], _: T.Type) -> [T] {
        let size = MemoryLayout<T>.size
        return stride(from: 0, to: b.count, by: size).map { i in
            var v: T = 0
            for k in 0..<size { v |= T(truncatingIfNeeded: b[i + k]) << (8 * k) }
            return v
        }
    }

    /// A typed tensor rebuilt from the oracle's raw bytes.
    static func tensor(_ t: Tensor) throws -> SafetensorsTensor {
        let b = hex(t.hex)
        switch t.dtype {
        case "F64": return try SafetensorsTensor(le(b, UInt64.self).map(Double.init(bitPattern:)), shape: t.shape)
        case "F32": return try SafetensorsTensor(le(b, UInt32.self).map(Float.init(bitPattern:)), shape: t.shape)
        case "F16": return try SafetensorsTensor(float16Bits: le(b, UInt16.self), shape: t.shape)
        case "I64": return try SafetensorsTensor(le(b, Int64.self), shape: t.shape)
        case "I32": return try SafetensorsTensor(le(b, Int32.self), shape: t.shape)
        case "I16": return try SafetensorsTensor(le(b, Int16.self), shape: t.shape)
        case "I8": return try SafetensorsTensor(le(b, Int8.self), shape: t.shape)
        case "U64": return try SafetensorsTensor(le(b, UInt64.self), shape: t.shape)
        case "U32": return try SafetensorsTensor(le(b, UInt32.self), shape: t.shape)
        case "U16": return try SafetensorsTensor(le(b, UInt16.self), shape: t.shape)
        case "U8": return try SafetensorsTensor(b, shape: t.shape)
        case "BOOL": return try SafetensorsTensor(b.map { $0 != 0 }, shape: t.shape)
        default: throw MedprepError(.unsupported, "dtype \(t.dtype)")
        }
    }

    static func layout(_ l: Layout) throws -> ShardLayout {
        try ShardLayout(channels: l.channels, height: l.height, width: l.width, classCount: l.class_count,
                        imageDType: l.image_dtype == "float16" ? .float16 : .float32,
                        sdf: l.sdf, rrw: l.rrw, mapScales: l.map_scales)
    }

    static func sample(_ s: Sample) -> ShardSample {
        func maps(_ m: [String: [Double]]) -> [Int: [Float]] {
            Dictionary(uniqueKeysWithValues: m.map { (Int($0.key)!, $0.value.map { Float($0) }) })
        }
        return ShardSample(image: s.image.map { Float($0) }, label: s.label.map { UInt16($0) },
                           sdf: maps(s.sdf), rrw: maps(s.rrw), caseIndex: s.case_index, sliceIndex: s.slice_index,
                           sliceCount: s.slice_count, sliceCoordMM: s.slice_coord_mm)
    }

    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("medprep-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite struct SafetensorsOracleTests {
    static let fileNames = SafetensorsFixtures.expected.map { Array($0.files.keys).sorted() } ?? []
    static let shardNames = SafetensorsFixtures.expected.map { Array($0.shards.keys).sorted() } ?? []

    @Test func fixturesArePresent() {
        #expect(Self.fileNames.count >= 10, "run tools/fixtures/make_safetensors_fixtures.py")
        #expect(Self.shardNames.count >= 2)
        #expect(SafetensorsFixtures.hostile.count >= 30)
    }

    /// The writer reproduces Python's file byte for byte.
    @Test(arguments: fileNames)
    func writerIsByteIdenticalToPython(_ name: String) throws {
        let e = try #require(SafetensorsFixtures.expected?.files[name])
        let python = try SafetensorsFixtures.bytes("oracle/\(name)")
        var w = SafetensorsWriter(metadata: e.metadata)
        for t in e.tensors { try w.add(t.name, SafetensorsFixtures.tensor(t)) }
        let ours = w.serialize()
        #expect(ours == python, "\(name): ours \(String(decoding: w.headerBytes(), as: UTF8.self))")
        #expect(w.layout().map(\.name) == e.file_order)

        // Same bytes whatever the insertion order.
        var reversed = SafetensorsWriter(metadata: e.metadata)
        for t in e.tensors.reversed() { try reversed.add(t.name, SafetensorsFixtures.tensor(t)) }
        #expect(reversed.serialize() == python)

        // And through the file system.
        let dir = try SafetensorsFixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = try w.write(to: dir + "/out.safetensors")
        #expect(written.sha256 == e.sha256 && written.bytes == e.bytes)
        #expect(try FileIO.readAll(dir + "/out.safetensors") == python)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.safetensors"])
    }

    /// The reader gives what Python wrote.
    @Test(arguments: fileNames)
    func readerReadsPythonFiles(_ name: String) throws {
        let e = try #require(SafetensorsFixtures.expected?.files[name])
        let f = try SafetensorsReader.read(path: SafetensorsFixtures.path("oracle/\(name)"))
        #expect(f.metadata == e.metadata)
        #expect(f.tensors.map(\.name) == e.file_order)
        #expect(try SafetensorsReader.readHeader(path: f.path) == f.header)
        for t in e.tensors {
            let info = try f.info(t.name)
            #expect(info.dtype.rawValue == t.dtype && info.shape == t.shape, "\(t.name)")
            #expect(Array(try f.rawBytes(t.name)) == SafetensorsFixtures.hex(t.hex), "\(t.name)")
            #expect((f.header.dataStart + info.begin) % info.dtype.itemSize == 0, "\(t.name) is aligned")
            guard let values = t.values else { continue }
            let got: [Double]
            switch info.dtype {
            case .F64: got = try f.values(t.name, as: Double.self)
            case .F32: got = try f.values(t.name, as: Float.self).map(Double.init)
            case .F16: got = try f.float16Bits(t.name).map(Double.init)
            case .I64:
                let v = try f.values(t.name, as: Int64.self)
                #expect(v.map { SafetensorsFixtures.Value.int($0) } == values, "\(t.name)")
                continue
            case .U64:
                let v = try f.values(t.name, as: UInt64.self)
                #expect(zip(v, values).allSatisfy { a, b in
                    if case .uint(let u) = b { return u == a }
                    if case .int(let i) = b { return i >= 0 && UInt64(i) == a }
                    return false
                }, "\(t.name)")
                continue
            case .I32: got = try f.values(t.name, as: Int32.self).map(Double.init)
            case .U32: got = try f.values(t.name, as: UInt32.self).map(Double.init)
            case .I16: got = try f.values(t.name, as: Int16.self).map(Double.init)
            case .U16: got = try f.values(t.name, as: UInt16.self).map(Double.init)
            case .I8: got = try f.values(t.name, as: Int8.self).map(Double.init)
            case .U8: got = try f.values(t.name, as: UInt8.self).map(Double.init)
            case .BOOL: got = try f.values(t.name, as: Bool.self).map { $0 ? 1 : 0 }
            }
            #expect(got == values.map(\.double), "\(t.name)")
        }
        // Asking for the wrong type or a missing name is an error naming the tensor.
        if let first = f.tensors.first(where: { $0.dtype != .F64 }) {
            #expect(throws: MedprepError.self) { _ = try f.values(first.name, as: Double.self) }
        }
        #expect(throws: MedprepError.self) { _ = try f.info("no such tensor") }
    }

    /// ShardBuilder, fed the samples, writes the shard Python built from docs/shard-format.md.
    @Test(arguments: shardNames)
    func shardBuilderIsByteIdenticalToPython(_ name: String) throws {
        let spec = try #require(SafetensorsFixtures.expected?.shards[name])
        let layout = try SafetensorsFixtures.layout(spec.layout)
        let b = ShardBuilder(layout: layout, medprepVersion: spec.medprep_version, capacity: spec.samples.count)
        for s in spec.samples { try b.append(SafetensorsFixtures.sample(s)) }
        let python = try SafetensorsFixtures.bytes("oracle/\(name)")
        let w = try b.makeWriter(shardIndex: spec.shard_index)
        #expect(w.serialize() == python, "\(name): ours \(String(decoding: w.headerBytes(), as: UTF8.self))")

        let dir = try SafetensorsFixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let record = try b.writeShard(directory: dir, shardIndex: spec.shard_index, firstSample: 10)
        #expect(record.file == ShardLayout.fileName(shardIndex: spec.shard_index))
        #expect(record.sha256 == SHA256.hex(python) && record.bytes == python.count)
        #expect(record.sampleCount == spec.samples.count && record.firstSample == 10)
        #expect(b.count == 0)
        #expect(try FileIO.readAll(dir + "/" + record.file) == python)
    }

    @Test(arguments: shardNames)
    func shardCheckAcceptsPythonShards(_ name: String) throws {
        let spec = try #require(SafetensorsFixtures.expected?.shards[name])
        let f = try SafetensorsReader.read(path: SafetensorsFixtures.path("oracle/\(name)"))
        let s = try ShardCheck.validate(f)
        #expect(s.layout == (try SafetensorsFixtures.layout(spec.layout)))
        #expect(s.sampleCount == spec.samples.count && s.shardIndex == spec.shard_index)
        #expect(s.medprepVersion == spec.medprep_version)
    }

    @Test func shardCheckRejectsOtherFiles() throws {
        let f = try SafetensorsReader.read(path: SafetensorsFixtures.path("oracle/all_dtypes.safetensors"))
        #expect(throws: MedprepError.self) { _ = try ShardCheck.validate(f) }
    }
}

@Suite struct Float16ConversionTests {
    /// numpy's astype(np.float16) on ties, near-ties, subnormals, overflow and NaN payloads.
    @Test func matchesNumpy() throws {
        let f = try SafetensorsReader.read(path: SafetensorsFixtures.path("f16_rounding.safetensors"))
        let input = try f.values("input", as: Float.self)
        let expected = try f.float16Bits("expected")
        #expect(input.count == expected.count && input.count > 5000)
        var mismatches = 0
        for (x, want) in zip(input, expected) where Float16Conversion.halfBits(x) != want {
            if mismatches < 10 { Issue.record("halfBits(\(x) = 0x\(String(x.bitPattern, radix: 16))) = 0x\(String(Float16Conversion.halfBits(x), radix: 16)), numpy 0x\(String(want, radix: 16))") }
            mismatches += 1
        }
        #expect(mismatches == 0)
        #expect(Float16Conversion.halfBits(input) == expected)
    }

    #if arch(x86_64) || arch(arm64)
    /// Every half converts to Float exactly (checked against Swift's own Float16) and back.
    @Test func everyHalfRoundTrips() {
        for h in 0...UInt16.max {
            let f = Float16Conversion.float(fromHalfBits: h)
            let native = Float(Float16(bitPattern: h))
            #expect(f.bitPattern == native.bitPattern || (f.isNaN && native.isNaN), "0x\(String(h, radix: 16))")
            #expect(Float16Conversion.halfBits(f) == h, "0x\(String(h, radix: 16))")
        }
    }

    /// A sweep of float bit patterns against the compiler's Float→Float16 (round to nearest even).
    @Test func agreesWithNativeConversion() {
        var bits: UInt32 = 0
        var bad = 0
        while true {
            let x = Float(bitPattern: bits)
            if !x.isNaN {
                let ours = Float16Conversion.halfBits(x)
                let native = Float16(x).bitPattern
                if ours != native { bad += 1; if bad < 5 { Issue.record("0x\(String(bits, radix: 16)): ours 0x\(String(ours, radix: 16)) native 0x\(String(native, radix: 16))") } }
            }
            let (next, o) = bits.addingReportingOverflow(4093)  // odd stride: every low-bit pattern is visited
            if o { break }
            bits = next
        }
        #expect(bad == 0)
    }
    #endif
}

@Suite struct SafetensorsHostileTests {
    static let names = SafetensorsFixtures.hostile.keys.sorted()

    @Test(arguments: names)
    func hostileFileIsRejected(_ name: String) throws {
        let spec = try #require(SafetensorsFixtures.hostile[name])
        let path = SafetensorsFixtures.path("hostile/\(name)")
        do {
            _ = try SafetensorsReader.read(path: path)
            Issue.record("\(name) was accepted (\(spec.why))")
        } catch let error as MedprepError {
            #expect(error.code.rawValue == spec.code, "\(name): \(error)")
            #expect(error.path == path && !error.message.isEmpty)
        }
        // The header-only reader agrees.
        do {
            _ = try SafetensorsReader.readHeader(path: path)
            Issue.record("\(name) header was accepted (\(spec.why))")
        } catch let error as MedprepError {
            #expect(error.code.rawValue == spec.code, "\(name) header: \(error)")
        }
    }

    /// Errors about one tensor name it.
    @Test func errorsNameTheTensor() throws {
        for (file, tensor) in [("overlap", "b"), ("hole", "b"), ("shape_mismatch", "a"), ("unknown_dtype", "a"),
                               ("missing_dtype", "a"), ("offsets_negative", "a"), ("offsets_past_end", "a"), ("data_truncated", "b")] {
            do {
                _ = try SafetensorsReader.read(path: SafetensorsFixtures.path("hostile/\(file).safetensors"))
                Issue.record("\(file) accepted")
            } catch let e as MedprepError {
                #expect(e.message.contains("'\(tensor)'"), "\(file): \(e.message)")
            }
        }
    }

    /// Every truncation of valid files is an error, never a crash.
    @Test(arguments: ["shard_f32.safetensors", "all_dtypes.safetensors", "names.safetensors"])
    func everyTruncationIsRejected(_ name: String) throws {
        let bytes = try SafetensorsFixtures.bytes("oracle/\(name)")
        _ = try SafetensorsReader.parse(bytes, path: name)
        for cut in 0..<bytes.count {
            #expect(throws: MedprepError.self, "cut at \(cut)") { _ = try SafetensorsReader.parse(Array(bytes[0..<cut]), path: name) }
        }
    }

    /// Byte changes in the length prefix and header give a valid file or a MedprepError.
    @Test func headerByteFlipsNeverCrash() throws {
        let bytes = try SafetensorsFixtures.bytes("oracle/shard_f32.safetensors")
        let n = Int(bytes[0]) | Int(bytes[1]) << 8
        var accepted = 0
        for i in 0..<(8 + n) {
            for v: UInt8 in [0x00, 0x22, 0x30, 0x39, 0x5B, 0x7B, 0x7D, 0xFF, bytes[i] ^ 0x01] {
                var b = bytes
                b[i] = v
                do {
                    let f = try SafetensorsReader.parse(b, path: "flip")
                    accepted += 1
                    // Whatever was accepted is consistent.
                    #expect(f.header.fileSize == b.count)
                } catch is MedprepError {
                } catch {
                    Issue.record("byte \(i) = \(v): non-Medprep error \(error)")
                }
            }
        }
        #expect(accepted > 0)  // e.g. digit changes inside float-free places like padding
    }

    @Test func hugeClaimsDoNotAllocate() throws {
        // 2^60 U32 elements claimed over 4 real bytes: rejected before any allocation.
        let json = #"{"a":{"dtype":"U32","shape":[1152921504606846976],"data_offsets":[0,4611686018427387904]}}"#
        var b = withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { Array($0) }
        b += Array(json.utf8) + [0, 0, 0, 0]
        #expect(throws: MedprepError.self) { _ = try SafetensorsReader.parse(b, path: "huge") }
    }
}

@Suite struct SafetensorsRoundTripTests {
    @Test func everyDtypeRoundTrips() throws {
        var w = SafetensorsWriter(metadata: ["k": "v", "a": "b"])
        try w.add("f64", [1.5, -2, .infinity], shape: [3])
        try w.add("f32", [Float(1.25), -0.0, .nan, 3], shape: [2, 2])
        try w.add("f16", SafetensorsTensor.float16([1, 0.1, 65520, -2.5e-8], shape: [4]))
        try w.add("i64", [Int64.min, 0, .max], shape: [3, 1])
        try w.add("i32", [Int32.min, 7], shape: [2])
        try w.add("i16", [Int16(-3)], shape: [])
        try w.add("i8", [Int8(-128), 127, 0], shape: [3])
        try w.add("u64", [UInt64.max], shape: [1])
        try w.add("u32", [UInt32(9), 8, 7], shape: [1, 3])
        try w.add("u16", [UInt16](), shape: [0, 4])
        try w.add("u8", [UInt8(1), 2, 3, 4, 5], shape: [5])
        try w.add("bool", [true, false, true], shape: [3])
        let f = try SafetensorsReader.parse(w.serialize(), path: "mem")
        #expect(f.metadata == ["k": "v", "a": "b"])
        #expect(try f.values("f64", as: Double.self) == [1.5, -2, .infinity])
        let f32 = try f.values("f32", as: Float.self)
        #expect(f32[0] == 1.25 && f32[1].sign == .minus && f32[2].isNaN && f32[3] == 3)
        #expect(try f.floats("f16").prefix(3) == [1, Float16Conversion.float(fromHalfBits: Float16Conversion.halfBits(0.1)), .infinity])
        #expect(try f.floats("f16")[3].bitPattern == (-0.0 as Float).bitPattern)
        #expect(try f.values("i64", as: Int64.self) == [.min, 0, .max])
        #expect(try f.values("i32", as: Int32.self) == [.min, 7])
        #expect(try f.values("i16", as: Int16.self) == [-3] && (try f.info("i16").shape) == [])
        #expect(try f.values("i8", as: Int8.self) == [-128, 127, 0])
        #expect(try f.values("u64", as: UInt64.self) == [.max])
        #expect(try f.values("u32", as: UInt32.self) == [9, 8, 7])
        #expect(try f.values("u16", as: UInt16.self) == [] && (try f.info("u16").shape) == [0, 4])
        #expect(try f.values("u8", as: UInt8.self) == [1, 2, 3, 4, 5])
        #expect(try f.values("bool", as: Bool.self) == [true, false, true])
        for t in f.tensors { #expect((f.header.dataStart + t.begin) % t.dtype.itemSize == 0, "\(t.name) aligned") }
        // Re-serializing what was read gives the same bytes.
        var again = SafetensorsWriter(metadata: f.metadata)
        for t in f.tensors { try again.add(t.name, f.tensor(t.name)) }
        #expect(again.serialize() == w.serialize())
    }

    @Test func headerIsPaddedWithSpaces() throws {
        for len in 0..<10 {
            var w = SafetensorsWriter()
            try w.add(String(repeating: "x", count: len), [UInt8(1)], shape: [1])
            let h = w.headerBytes()
            #expect(h.count % 8 == 0 && h.count - h.lastIndex(of: UInt8(ascii: "}"))! <= 8)
            #expect(h.drop(while: { $0 != UInt8(ascii: "}") }).dropFirst(2).allSatisfy { $0 == 0x20 || $0 == UInt8(ascii: "}") })
        }
    }

    @Test func writerRejectsBadInput() throws {
        var w = SafetensorsWriter()
        try w.add("a", [Float(1)], shape: [1])
        #expect(throws: MedprepError.self) { try w.add("a", [Float(1)], shape: [1]) }
        #expect(throws: MedprepError.self) { try w.add("__metadata__", [Float(1)], shape: [1]) }
        #expect(throws: MedprepError.self) { try w.add("b", [Float(1), 2], shape: [3]) }
        #expect(throws: MedprepError.self) { try w.add("c", [Float(1)], shape: [-1]) }
        #expect(throws: MedprepError.self) { _ = try SafetensorsTensor(dtype: .F32, shape: [1], littleEndianBytes: [1, 2, 3]) }
        // Canonically equivalent names are different tensors for safetensors (byte-wise keys).
        try w.add("\u{E9}", [Float(1)], shape: [1])
        try w.add("e\u{301}", [Float(2)], shape: [1])
        let f = try SafetensorsReader.parse(w.serialize(), path: "mem")
        #expect(f.tensors.count == 3)
    }

    @Test func noMetadataAndEmptyMetadataDiffer() throws {
        let none = SafetensorsWriter().serialize()
        let empty = SafetensorsWriter(metadata: [:]).serialize()
        #expect(none == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        #expect(Array(empty[8...]) == Array(#"{"__metadata__":{}}     "#.utf8))
        #expect(try SafetensorsReader.parse(none, path: "m").metadata == nil)
        #expect(try SafetensorsReader.parse(empty, path: "m").metadata == [:])
    }

    @Test func writeRefusesToOverwriteWhenAsked() throws {
        let dir = try SafetensorsFixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var w = SafetensorsWriter()
        try w.add("x", [Int32(1)], shape: [1])
        let p = dir + "/x.safetensors"
        let first = try w.write(to: p)
        #expect(first.sha256 == SHA256.hex(try FileIO.readAll(p)))
        #expect(throws: MedprepError.self) { try w.write(to: p, overwrite: false) }
    }

    @Test func jsonParserHandlesEscapes() throws {
        let text = #"{"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00":[1,-0,2.5e3,true,false,null,{}]}"#
        let v = try Array(text.utf8).withUnsafeBytes { try HeaderJSON.parse($0) }
        guard case .object(let m) = v, let (k, inner) = m.first else { Issue.record("not an object"); return }
        #expect(k == "a\"b\\c/d\u{8}\u{C}\n\r\t\u{E9}\u{1F600}")
        #expect(inner == .array([.integer(1), .integer(0), .number("2.5e3"), .bool(true), .bool(false), .null, .object([])]))
        for bad in ["{", "{\"a\":}", "[1,]", "01", "\"\\x\"", "{\"a\" 1}", "1 2", "\"\\ud800\"", "[" + String(repeating: "[", count: 200)] {
            #expect(throws: HeaderJSON.ParseError.self, "\(bad)") { _ = try Array(bad.utf8).withUnsafeBytes { try HeaderJSON.parse($0) } }
        }
    }
}

@Suite struct ShardBuilderTests {
    static func layout(_ dtype: ShardLayout.ImageDType = .float32, k: Int = 3) throws -> ShardLayout {
        try ShardLayout(channels: 1, height: 3, width: 5, classCount: k, imageDType: dtype, sdf: true, rrw: true, mapScales: [2, 1])
    }

    static func sample(_ l: ShardLayout, case c: Int = 0, slice i: Int, of n: Int, label: UInt16 = 1) -> ShardSample {
        let plane = l.height * l.width
        var maps: [Int: [Float]] = [:]
        for s in l.mapScales {
            let size = l.mapSize(scale: s)
            maps[s] = (0..<(l.classCount * size.height * size.width)).map { Float($0) * 0.5 - Float(s) }
        }
        return ShardSample(image: (0..<(l.channels * plane)).map { Float($0) / 7 + Float(i) },
                           label: [UInt16](repeating: label, count: plane), sdf: maps, rrw: maps,
                           caseIndex: c, sliceIndex: i, sliceCount: n, sliceCoordMM: Double(i) * 2.5 - 1)
    }

    @Test func layoutRules() throws {
        let l = try Self.layout()
        #expect(l.mapScales == [1, 2])
        #expect(l.mapSize(scale: 2) == (2, 3) && l.mapSize(scale: 4) == (1, 2))
        #expect(l.mapTensors.map(\.name) == ["sdf", "sdf_s2", "rrw", "rrw_s2"])
        #expect(l.labelDType == .U8)
        #expect(try Self.layout(k: 255).labelDType == .U8)
        #expect(try Self.layout(k: 256).labelDType == .U16)
        #expect(try ShardLayout(channels: 1, height: 1, width: 1, classCount: 3, labelDType: .uint16).labelDType == .U16)
        #expect(try ShardLayout(channels: 1, height: 1, width: 1, classCount: 256, labelDType: .uint8).labelDType == .U8)
        #expect(throws: MedprepError.self) { _ = try ShardLayout(channels: 1, height: 1, width: 1, classCount: 257, labelDType: .uint8) }
        #expect(ShardLayout.fileName(shardIndex: 3) == "shard-00003.safetensors")
        #expect(ShardLayout.fileName(shardIndex: 123456) == "shard-123456.safetensors")
        #expect(ShardLayout.position(sliceIndex: 0, sliceCount: 4) == 0.25)
        #expect((0..<8).map { ShardLayout.pclPartition(sliceIndex: $0, sliceCount: 8) } == [1, 1, 2, 2, 3, 3, 4, 4])
        #expect((0..<3).map { ShardLayout.pclPartition(sliceIndex: $0, sliceCount: 3) } == [1, 2, 3])
        #expect(ShardLayout.pclPartition(sliceIndex: 0, sliceCount: 1) == 1)
        #expect(throws: MedprepError.self) { _ = try ShardLayout(channels: 0, height: 1, width: 1, classCount: 2) }
        #expect(throws: MedprepError.self) { _ = try ShardLayout(channels: 1, height: 1, width: 1, classCount: 0) }
        #expect(throws: MedprepError.self) { _ = try ShardLayout(channels: 1, height: 1, width: 1, classCount: 2, mapScales: [0]) }
        #expect(throws: MedprepError.self) { _ = try ShardLayout(channels: 1, height: 1, width: 1, classCount: 2, mapScales: []) }
    }

    @Test func badSamplesAreRejectedAndNotAppended() throws {
        let l = try Self.layout()
        let b = ShardBuilder(layout: l, medprepVersion: "t")
        try b.append(Self.sample(l, slice: 0, of: 2))
        var s = Self.sample(l, slice: 1, of: 2)
        s.image.removeLast()
        #expect(throws: MedprepError.self) { try b.append(s) }
        s = Self.sample(l, slice: 1, of: 2, label: 3)
        #expect(throws: MedprepError.self) { try b.append(s) }
        s = Self.sample(l, slice: 2, of: 2)
        #expect(throws: MedprepError.self) { try b.append(s) }
        s = Self.sample(l, slice: 1, of: 2)
        s.sdf[2] = nil
        #expect(throws: MedprepError.self) { try b.append(s) }
        s = Self.sample(l, slice: 1, of: 2)
        s.rrw[4] = [0]
        #expect(throws: MedprepError.self) { try b.append(s) }
        s = Self.sample(l, slice: 1, of: 2)
        s.pclPartition = 5
        #expect(throws: MedprepError.self) { try b.append(s) }
        #expect(b.count == 1)
        try b.append(Self.sample(l, slice: 1, of: 2))
        #expect(b.count == 2)
        #expect(throws: MedprepError.self) { _ = try ShardBuilder(layout: l, medprepVersion: "t").makeWriter(shardIndex: 0) }
    }

    @Test func shardRoundTripsAndChecks() throws {
        let l = try Self.layout()
        let b = ShardBuilder(layout: l, medprepVersion: "9.9")
        let samples = [Self.sample(l, case: 0, slice: 0, of: 3, label: 0), Self.sample(l, case: 0, slice: 2, of: 3),
                       Self.sample(l, case: 7, slice: 4, of: 5, label: 2)]
        for s in samples { try b.append(s) }
        let dir = try SafetensorsFixtures.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rec = try b.writeShard(directory: dir, shardIndex: 2, firstSample: 6)
        #expect(try JSONValueEncoder().encode(rec).serialized() == #"{"file":"shard-00002.safetensors","sha256":"\#(rec.sha256)","bytes":\#(rec.bytes),"sample_count":3,"first_sample":6}"#)
        let f = try SafetensorsReader.read(path: dir + "/" + rec.file)
        let summary = try ShardCheck.validate(f)
        #expect(summary.layout == l && summary.sampleCount == 3 && summary.shardIndex == 2 && summary.medprepVersion == "9.9")
        #expect(f.metadata == ["format": "medprep-shard", "format_version": "1", "shard_index": "2", "sample_count": "3", "medprep_version": "9.9"])
        #expect(try f.info("image").shape == [3, 1, 3, 5] && (try f.info("image").dtype) == .F32)
        #expect(try f.values("image", as: Float.self) == samples.flatMap(\.image))
        #expect(try f.values("label", as: UInt8.self) == samples.flatMap { $0.label.map { UInt8($0) } })
        #expect(try f.info("sdf_s2").shape == [3, 3, 2, 3])
        #expect(try f.values("rrw_s2", as: Float.self) == samples.flatMap { $0.rrw[2]! })
        #expect(try f.values("case_index", as: Int32.self) == [0, 0, 7])
        #expect(try f.values("slice_index", as: Int32.self) == [0, 2, 4])
        #expect(try f.values("slice_count", as: Int32.self) == [3, 3, 5])
        #expect(try f.values("position", as: Double.self) == [1.0 / 3, 1.0, 1.0])
        #expect(try f.values("slice_coord_mm", as: Double.self) == [-1, 4, 9])
        #expect(try f.values("pcl_partition", as: UInt8.self) == [1, 3, 4])
        #expect(try f.values("class_presence", as: UInt8.self) == [1, 0, 0, 0, 1, 0, 0, 0, 1])
    }

    @Test func halfPrecisionAndWideLabels() throws {
        let l = try Self.layout(.float16, k: 300)
        let b = ShardBuilder(layout: l, medprepVersion: "t")
        var s = Self.sample(l, slice: 0, of: 1, label: 299)
        s.image[0] = 65520
        s.image[1] = 1 + 0x1p-11
        try b.append(s)
        let f = try SafetensorsReader.parse(b.makeWriter(shardIndex: 0).serialize(), path: "mem")
        #expect(try f.info("image").dtype == .F16 && (try f.info("label").dtype) == .U16)
        let img = try f.floats("image")
        #expect(img[0] == .infinity && img[1] == 1)
        #expect(img == s.image.map { Float16Conversion.float(fromHalfBits: Float16Conversion.halfBits($0)) })
        #expect(try f.values("label", as: UInt16.self).allSatisfy { $0 == 299 })
        #expect(try ShardCheck.validate(f).layout == l)
    }

    @Test func shardCheckFindsInconsistencies() throws {
        let l = try Self.layout()
        let b = ShardBuilder(layout: l, medprepVersion: "t")
        try b.append(Self.sample(l, slice: 1, of: 4))
        let good = try b.makeWriter(shardIndex: 0)
        func mutated(_ change: (inout SafetensorsWriter) throws -> Void) throws -> SafetensorsFile {
            var w = SafetensorsWriter(metadata: good.metadata)
            try change(&w)
            for t in good.tensors where !w.tensors.contains(where: { $0.name == t.name }) { try w.add(t.name, t.tensor) }
            return try SafetensorsReader.parse(w.serialize(), path: "bad")
        }
        #expect(try ShardCheck.validate(mutated { _ in }).sampleCount == 1)
        // A forced U16 label (dtypes.label: uint16) with few classes is fine.
        #expect(try ShardCheck.validate(mutated { try $0.add("label", [UInt16](repeating: 1, count: 15), shape: [1, 3, 5]) }).layout.labelDType == .U16)
        for change: (inout SafetensorsWriter) throws -> Void in [
            { try $0.add("position", [0.25], shape: [1]) },  // (1+1)/4 = 0.5
            { try $0.add("pcl_partition", [UInt8(0)], shape: [1]) },
            { try $0.add("slice_index", [Int32(4)], shape: [1]) },
            { try $0.add("label", [UInt8](repeating: 3, count: 15), shape: [1, 3, 5]) },
            { try $0.add("label", [UInt8](repeating: 1, count: 15), shape: [1, 5, 3]) },
            { try $0.add("extra", [UInt8(0)], shape: [1]) },
            { try $0.add("sdf_s3", [Float](repeating: 0, count: 3 * 1 * 2), shape: [1, 3, 1, 2]) },
            { try $0.add("image", [Float](repeating: 0, count: 30), shape: [2, 1, 3, 5]) },
            { $0.metadata?["sample_count"] = "2" },
            { $0.metadata?["format"] = "other" },
        ] {
            #expect(throws: MedprepError.self) { _ = try ShardCheck.validate(try mutated(change)) }
        }
    }

    @Test func sameSamplesSameBytes() throws {
        let l = try Self.layout()
        func build() throws -> [UInt8] {
            let b = ShardBuilder(layout: l, medprepVersion: "t", capacity: 4)
            for i in 0..<4 { try b.append(Self.sample(l, case: i % 2, slice: i, of: 4)) }
            return try b.makeWriter(shardIndex: 1).serialize()
        }
        #expect(try build() == (try build()))
    }
}
