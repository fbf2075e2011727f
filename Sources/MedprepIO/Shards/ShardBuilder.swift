#if canImport(Glibc)
import Glibc
#endif
import MedprepCore

/// Accumulates samples straight into a shard's file image (docs/shard-format.md): one reusable
/// page-aligned buffer in which every tensor already sits at its offset in the finished file,
/// laid out for a full shard of `capacity` samples, so a sample's values are copied once, into
/// place, and a full shard is written from that buffer as it is (header in front, O_DIRECT, no
/// serialised copy, no fresh memory per shard). A shortened last shard is compacted in place.
/// Samples keep the order they are appended in; the same samples give the same bytes.
public final class ShardBuilder {
    public let layout: ShardLayout
    public let medprepVersion: String
    public private(set) var count = 0

    /// One tensor of the shard: its shape is [N] + `sampleShape`.
    private struct Field {
        let name: String
        let dtype: SafetensorsDType
        let sampleShape: [Int]
        var sampleBytes: Int { sampleShape.reduce(1, *) * dtype.itemSize }
    }

    /// image, label, the maps (layout.mapTensors order), then the per-sample values (`scalar0` on).
    private let fields: [Field]
    private let scalar0: Int
    /// Samples the current slots have room for (doubles when exceeded).
    private var slotCapacity: Int
    /// Byte offset in `buffer` of each field's first sample.
    private var slots: [Int] = []
    private var buffer: AlignedBuffer
    /// A written shard's buffer, handed back with `recycle`.
    private var spare: AlignedBuffer?
    /// The slots are laid out with this shard index's header (the next one `seal` expects).
    private var nextShardIndex = 0

    /// `capacity`: samples per shard (0: grow as needed). `firstShardIndex`: the index the first
    /// shard will be sealed with (a full shard whose header was foreseen needs no moving at all).
    public init(layout: ShardLayout, medprepVersion: String, capacity: Int = 0, firstShardIndex: Int = 0) {
        self.layout = layout
        self.medprepVersion = medprepVersion
        fields = Self.fields(layout)
        scalar0 = 2 + layout.mapTensors.count
        slotCapacity = max(1, capacity)
        nextShardIndex = max(0, firstShardIndex)
        buffer = AlignedBuffer(capacity: 0)
        reset()
    }

    /// The tensors of a shard as they are filled (maps dense F32): image, label, the maps
    /// (layout.mapTensors order), then the per-sample values.
    private static func fields(_ L: ShardLayout) -> [Field] {
        var f = [Field(name: "image", dtype: L.imageDType.safetensors, sampleShape: [L.channels, L.height, L.width]),
                 Field(name: "label", dtype: L.labelDType, sampleShape: [L.height, L.width])]
        for m in L.mapTensors {
            let size = L.mapSize(scale: m.scale)
            f.append(Field(name: m.name, dtype: .F32, sampleShape: [L.classCount, size.height, size.width]))
        }
        return f + [Field(name: "case_index", dtype: .I32, sampleShape: []), Field(name: "slice_index", dtype: .I32, sampleShape: []),
                    Field(name: "slice_count", dtype: .I32, sampleShape: []), Field(name: "position", dtype: .F64, sampleShape: []),
                    Field(name: "slice_coord_mm", dtype: .F64, sampleShape: []), Field(name: "pcl_partition", dtype: .U8, sampleShape: []),
                    Field(name: "class_presence", dtype: .U8, sampleShape: [L.classCount])]
    }

    /// The tensor entries of a sealed shard of `n` samples: maps in the layout's dtype, [n, K, h, w]
    /// or, compact, [planes, h, w] (`planes` = the ones in class_presence).
    private static func entries(_ L: ShardLayout, fields: [Field], samples n: Int, planes: Int) -> [SafetensorsWriter.Entry] {
        let mapFields = 2..<(2 + L.mapTensors.count)
        return fields.indices.map { f in
            let field = fields[f]
            guard mapFields.contains(f) else {
                return .init(name: field.name, dtype: field.dtype, shape: [n] + field.sampleShape, byteCount: n * field.sampleBytes)
            }
            let (h, w) = (field.sampleShape[1], field.sampleShape[2])
            let shape = L.compactMaps ? [planes, h, w] : [n, L.classCount, h, w]
            let count = (L.compactMaps ? planes : n * L.classCount) * h * w
            return .init(name: field.name, dtype: L.mapDType, shape: shape, byteCount: count * L.mapDType.itemSize)
        }
    }

    /// The exact file size of a shard of `samples` samples with this layout, before any is
    /// written (convert's preflight). `presentPlanes`: compact maps only, the ones in its
    /// class_presence (between `samples` and samples·K).
    public static func fileBytes(layout: ShardLayout, samples: Int, shardIndex: Int, medprepVersion: String,
                                 presentPlanes: Int? = nil) -> Int {
        let meta = metadata(shardIndex: shardIndex, sampleCount: samples, medprepVersion: medprepVersion)
        return SafetensorsWriter.plan(metadata: meta, tensors: entries(layout, fields: fields(layout), samples: samples,
                                                                      planes: presentPlanes ?? samples * layout.classCount)).fileBytes
    }

    /// Drops the accumulated samples.
    public func reset() {
        count = 0
        let plan = plan(samples: slotCapacity, shardIndex: nextShardIndex)
        slots = offsets(plan)
        buffer.reserve(plan.fileBytes, preserving: 0)
    }

    /// Checks a sample against the layout and appends it. Nothing is appended when it throws.
    public func append(_ s: ShardSample) throws {
        let flags = try check(s, mapsGiven: true)
        if count == slotCapacity { grow() }
        store(s, flags, at: count)
        count += 1
    }

    /// Where one sample's map planes lie in the file image, to be filled in place: per scale,
    /// K·h·w floats laid out [K, h, w] (h = ceil(H/s), w = ceil(W/s)).
    public struct MapSlots: @unchecked Sendable {
        public let sdf: [Int: UnsafeMutablePointer<Float>]
        public let rrw: [Int: UnsafeMutablePointer<Float>]
    }

    /// Appends `samples` whose maps are computed straight into the shard (convert does this:
    /// maps are most of a shard's bytes, and so no per-slice map arrays are made or copied). Their
    /// `sdf` and `rrw` must be empty; `fillMaps(j, slots)` must write every value of sample j's
    /// map planes. Checking, copying and `fillMaps` run on up to `threads` threads, one sample
    /// each, so the bytes do not depend on `threads`. Nothing is appended when it throws (the
    /// first failing sample's error is thrown).
    public func append(_ samples: [ShardSample], threads: Int,
                       fillMaps: @Sendable (Int, MapSlots) throws -> Void) throws {
        guard !samples.isEmpty else { return }
        while count + samples.count > slotCapacity { grow() }
        let first = count
        let me = UnsafeSendable(self)
        let failures = UnsafeSendable(UnsafeMutableBufferPointer<Error?>.allocate(capacity: samples.count))
        failures.value.initialize(repeating: nil)
        defer { failures.value.deinitialize(); failures.value.deallocate() }
        parallelFor(samples.count, threads: threads) { j in
            let builder = me.value
            do {
                let s = samples[j]
                guard s.sdf.isEmpty && s.rrw.isEmpty else {
                    throw MedprepError(.invalidArgument, "case \(s.caseIndex) slice \(s.sliceIndex): maps filled in place must not also be given.")
                }
                let flags = try builder.check(s, mapsGiven: false)
                builder.store(s, flags, at: first + j)
                try fillMaps(j, builder.mapSlots(at: first + j))
            } catch {
                failures.value[j] = error
            }
        }
        if let e = failures.value.lazy.compactMap({ $0 }).first { throw e }
        count += samples.count
    }

    /// PCL partition and class presence of a sample that fits the layout.
    private struct SampleFlags {
        var partition: Int
        var present: [UInt8]
    }

    /// Checks a sample against the layout (its maps too when `mapsGiven`).
    private func check(_ s: ShardSample, mapsGiven: Bool) throws -> SampleFlags {
        let L = layout
        let plane = L.height * L.width
        let what = "case \(s.caseIndex) slice \(s.sliceIndex)"
        func bad(_ message: String) -> MedprepError { MedprepError(.invalidArgument, "\(what): \(message)") }
        guard s.image.count == L.channels * plane else {
            throw bad("image has \(s.image.count) values, expected C·H·W = \(L.channels)·\(L.height)·\(L.width) = \(L.channels * plane).")
        }
        guard s.label.count == plane else {
            throw bad("label has \(s.label.count) values, expected H·W = \(plane).")
        }
        guard s.caseIndex >= 0, s.caseIndex <= Int(Int32.max) else { throw bad("case index '\(s.caseIndex)' is out of range 0...\(Int32.max).") }
        guard s.sliceCount >= 1, s.sliceCount <= Int(Int32.max) else { throw bad("slice count '\(s.sliceCount)' is out of range 1...\(Int32.max).") }
        guard s.sliceIndex >= 0, s.sliceIndex < s.sliceCount else {
            throw bad("slice index '\(s.sliceIndex)' is out of range 0..<\(s.sliceCount).")
        }
        let partition = s.pclPartition ?? ShardLayout.pclPartition(sliceIndex: s.sliceIndex, sliceCount: s.sliceCount)
        guard (1...ShardLayout.pclPartitions).contains(partition) else {
            throw bad("PCL partition '\(partition)' is out of range 1...\(ShardLayout.pclPartitions).")
        }
        let K = L.classCount
        // The largest label first (a vectorised pass), then presence without per-value checks.
        let top = s.label.withUnsafeBufferPointer { labels in labels.reduce(UInt16(0)) { Swift.max($0, $1) } }
        guard Int(top) < K else { throw bad("label value '\(top)' is not below the class count \(K).") }
        var present = [UInt8](repeating: 0, count: K)
        present.withUnsafeMutableBufferPointer { p in
            s.label.withUnsafeBufferPointer { labels in
                for v in labels { p.baseAddress![Int(v)] = 1 }
            }
        }
        if let given = s.classPresence {
            guard given.count == K, given.allSatisfy({ $0 <= 1 }) else {
                throw bad("class presence must be \(K) values of 0 or 1, got \(given.count) values.")
            }
            present = given
        }
        guard mapsGiven else { return SampleFlags(partition: partition, present: present) }
        for m in L.mapTensors {
            let size = L.mapSize(scale: m.scale)
            let source = m.kind == "sdf" ? s.sdf : s.rrw
            guard let values = source[m.scale] else { throw bad("\(m.kind) map at scale \(m.scale) is missing.") }
            guard values.count == K * size.height * size.width else {
                throw bad("\(m.kind) map at scale \(m.scale) has \(values.count) values, expected K·h·w = \(K)·\(size.height)·\(size.width).")
            }
        }
        for kind in ["sdf", "rrw"] {
            let source = kind == "sdf" ? s.sdf : s.rrw
            let enabled = kind == "sdf" ? L.sdf : L.rrw
            if let extra = source.keys.sorted().first(where: { !enabled || !L.mapScales.contains($0) }) {
                throw bad("\(kind) map at scale \(extra) is not in the layout (scales \(enabled ? L.mapScales : [])).")
            }
        }
        return SampleFlags(partition: partition, present: present)
    }

    /// Start of field `f`'s values for sample slot `index`.
    private func at(_ f: Int, _ index: Int) -> UnsafeMutableRawPointer { buffer.base + slots[f] + index * fields[f].sampleBytes }

    private func mapSlots(at index: Int) -> MapSlots {
        var sdf: [Int: UnsafeMutablePointer<Float>] = [:], rrw: [Int: UnsafeMutablePointer<Float>] = [:]
        for (i, m) in layout.mapTensors.enumerated() {
            let p = at(2 + i, index).assumingMemoryBound(to: Float.self)
            if m.kind == "sdf" { sdf[m.scale] = p } else { rrw[m.scale] = p }
        }
        return MapSlots(sdf: sdf, rrw: rrw)
    }

    /// Copies a checked sample's values into slot `index` (little-endian, as the host stores
    /// them); its maps only when it carries them.
    private func store(_ s: ShardSample, _ flags: SampleFlags, at index: Int) {
        let L = layout
        func copy<T>(_ values: [T], to f: Int) {
            values.withUnsafeBytes { if let src = $0.baseAddress { at(f, index).copyMemory(from: src, byteCount: $0.count) } }
        }
        if L.imageDType == .float32 {
            copy(s.image, to: 0)
        } else {
            s.image.withUnsafeBufferPointer { Float16Conversion.halfBits($0, into: at(0, index)) }
        }
        if L.labelDType == .U8 {
            let out = at(1, index).assumingMemoryBound(to: UInt8.self)
            s.label.withUnsafeBufferPointer { labels in
                for i in labels.indices { out[i] = UInt8(truncatingIfNeeded: labels[i]) }
            }
        } else {
            copy(s.label, to: 1)
        }
        for (i, m) in L.mapTensors.enumerated() {
            if let values = (m.kind == "sdf" ? s.sdf : s.rrw)[m.scale] { copy(values, to: 2 + i) }
        }
        at(scalar0, index).storeBytes(of: Int32(s.caseIndex).littleEndian, as: Int32.self)
        at(scalar0 + 1, index).storeBytes(of: Int32(s.sliceIndex).littleEndian, as: Int32.self)
        at(scalar0 + 2, index).storeBytes(of: Int32(s.sliceCount).littleEndian, as: Int32.self)
        let p = ShardLayout.position(sliceIndex: s.sliceIndex, sliceCount: s.sliceCount)
        at(scalar0 + 3, index).storeBytes(of: p.bitPattern.littleEndian, as: UInt64.self)
        at(scalar0 + 4, index).storeBytes(of: s.sliceCoordMM.bitPattern.littleEndian, as: UInt64.self)
        at(scalar0 + 5, index).storeBytes(of: UInt8(flags.partition), as: UInt8.self)
        copy(flags.present, to: scalar0 + 6)
    }

    /// The shard's `__metadata__`.
    public func metadata(shardIndex: Int) -> [String: String] {
        metadata(shardIndex: shardIndex, sampleCount: count)
    }

    private func metadata(shardIndex: Int, sampleCount: Int) -> [String: String] {
        Self.metadata(shardIndex: shardIndex, sampleCount: sampleCount, medprepVersion: medprepVersion)
    }

    private static func metadata(shardIndex: Int, sampleCount: Int, medprepVersion: String) -> [String: String] {
        [
            "format": ShardLayout.format,
            "format_version": ShardLayout.formatVersion,
            "shard_index": String(shardIndex),
            "sample_count": String(sampleCount),
            "medprep_version": medprepVersion,
        ]
    }

    /// The file a shard of `n` samples would be: tensor order, offsets, header.
    private func plan(samples n: Int, shardIndex: Int) -> SafetensorsWriter.Plan {
        SafetensorsWriter.plan(metadata: metadata(shardIndex: shardIndex, sampleCount: n), tensors: fields.map {
            SafetensorsWriter.Entry(name: $0.name, dtype: $0.dtype, shape: [n] + $0.sampleShape, byteCount: n * $0.sampleBytes)
        })
    }

    /// Each field's file offset under `plan`.
    private func offsets(_ plan: SafetensorsWriter.Plan) -> [Int] {
        var out = [Int](repeating: 0, count: fields.count)
        for e in plan.order { out[e.index] = plan.dataStart + e.begin }
        return out
    }

    /// Moves every field's samples to `target` offsets, in place (the buffer first grows to
    /// `size` bytes if needed). Fields keep their file order, so moving the ones that go down in
    /// ascending order and the ones that go up in descending order never overwrites a field
    /// before it has moved.
    private func move(to target: [Int], size: Int) {
        let live = fields.map { count * $0.sampleBytes }
        buffer.reserve(max(size, zip(target, live).map(+).max() ?? 0), preserving: zip(slots, live).map(+).max() ?? 0)
        let order = fields.indices.sorted { slots[$0] < slots[$1] }
        for f in order where target[f] < slots[f] && live[f] > 0 {
            memmove(buffer.base + target[f], buffer.base + slots[f], live[f])
        }
        for f in order.reversed() where target[f] > slots[f] && live[f] > 0 {
            memmove(buffer.base + target[f], buffer.base + slots[f], live[f])
        }
        slots = target
    }

    /// More room (only when appending beyond the capacity given, or with capacity 0).
    private func grow() {
        slotCapacity *= 2
        let plan = plan(samples: slotCapacity, shardIndex: nextShardIndex)
        move(to: offsets(plan), size: plan.fileBytes)
    }

    /// Finishes the shard: compacts it if it is short (or its header was not foreseen), writes the
    /// header in front and hands the file image over. The builder goes on with a spare buffer
    /// (see `recycle`) or a new one; its count is then 0.
    public func seal(shardIndex: Int) throws -> SealedShard {
        guard count > 0 else { throw MedprepError(.invalidArgument, "shard \(shardIndex) has no samples.") }
        if !layout.mapsAsComputed { return sealEncoded(shardIndex: shardIndex) }
        let plan = plan(samples: count, shardIndex: shardIndex)
        move(to: offsets(plan), size: plan.fileBytes)
        plan.writeHeader(to: buffer.base)
        let sealed = SealedShard(buffer: buffer, byteCount: plan.fileBytes, shardIndex: shardIndex, sampleCount: count)
        buffer = spare ?? AlignedBuffer(capacity: buffer.capacity)
        spare = nil
        nextShardIndex = shardIndex + 1
        reset()
        return sealed
    }

    /// Seals a shard whose maps are stored otherwise than computed (F16 and/or only present
    /// classes' planes): the file is assembled in a second buffer, the maps re-encoded plane by
    /// plane, the other tensors copied as they are. The builder keeps its own buffer.
    private func sealEncoded(shardIndex: Int) -> SealedShard {
        let L = layout, K = L.classCount
        let presence = UnsafeBufferPointer(start: at(scalar0 + 6, 0).assumingMemoryBound(to: UInt8.self), count: count * K)
        let planes = L.compactMaps ? presence.reduce(0) { $0 + Int($1) } : count * K
        let mapFields = 2..<scalar0
        let plan = SafetensorsWriter.plan(metadata: metadata(shardIndex: shardIndex, sampleCount: count),
                                          tensors: Self.entries(L, fields: fields, samples: count, planes: planes))
        let out = spare ?? AlignedBuffer(capacity: 0)
        spare = nil
        out.reserve(plan.fileBytes, preserving: 0)
        plan.writeHeader(to: out.base)
        for e in plan.order {
            let dst = out.base + plan.dataStart + e.begin
            guard mapFields.contains(e.index) else {
                dst.copyMemory(from: at(e.index, 0), byteCount: e.end - e.begin)
                continue
            }
            let planeCount = fields[e.index].sampleShape[1] * fields[e.index].sampleShape[2]
            let src = at(e.index, 0).assumingMemoryBound(to: Float.self)
            var written = 0
            for p in 0..<(count * K) where !L.compactMaps || presence[p] == 1 {
                let from = UnsafeBufferPointer(start: src + p * planeCount, count: planeCount)
                let to = dst + written * planeCount * L.mapDType.itemSize
                if L.mapDType == .F16 {
                    Float16Conversion.halfBits(from, into: to)
                } else {
                    to.copyMemory(from: from.baseAddress!, byteCount: planeCount * 4)
                }
                written += 1
            }
        }
        let sealed = SealedShard(buffer: out, byteCount: plan.fileBytes, shardIndex: shardIndex, sampleCount: count)
        nextShardIndex = shardIndex + 1
        reset()
        return sealed
    }

    /// Hands a written shard's buffer back for the next shard (the shard must not be used again):
    /// a few buffers then serve a whole run, one filling while the others are written.
    public func recycle(_ shard: SealedShard) {
        if shard.buffer !== buffer { spare = shard.buffer }
    }

    /// The shard as a writer with its own copies of the tensors (tests and tools; convert seals).
    public func makeWriter(shardIndex: Int) throws -> SafetensorsWriter {
        guard count > 0 else { throw MedprepError(.invalidArgument, "shard \(shardIndex) has no samples.") }
        var w = SafetensorsWriter(metadata: metadata(shardIndex: shardIndex))
        for (f, field) in fields.enumerated() {
            let bytes = Array(UnsafeRawBufferPointer(start: buffer.base + slots[f], count: count * field.sampleBytes))
            try w.add(field.name, SafetensorsTensor(dtype: field.dtype, shape: [count] + field.sampleShape, littleEndianBytes: bytes))
        }
        return w
    }

    /// Writes the shard atomically to `directory/fileName(shardIndex)`, returns its index
    /// entry and resets the builder for the next shard.
    public func writeShard(directory: String, shardIndex: Int, firstSample: Int, overwrite: Bool = true) throws -> ShardRecord {
        let sealed = try seal(shardIndex: shardIndex)
        defer { recycle(sealed) }
        return try sealed.write(directory: directory, firstSample: firstSample, overwrite: overwrite)
    }
}

/// A finished shard's file image, ready to hash and write. It owns its buffer until that is
/// handed back with `ShardBuilder.recycle`; meanwhile another thread may write it.
public final class SealedShard: @unchecked Sendable {
    public let shardIndex: Int
    public let sampleCount: Int
    /// The file's length.
    public let byteCount: Int
    let buffer: AlignedBuffer

    init(buffer: AlignedBuffer, byteCount: Int, shardIndex: Int, sampleCount: Int) {
        self.buffer = buffer; self.byteCount = byteCount; self.shardIndex = shardIndex; self.sampleCount = sampleCount
    }

    /// Calls `body` with the whole file (valid only inside `body`).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeRawBufferPointer(start: buffer.base, count: byteCount)) }
    }

    /// Hashes the image and writes it atomically (temporary name, O_DIRECT where the filesystem
    /// allows it, fsync, rename) to `directory/shard-NNNNN.safetensors`; returns its index entry.
    /// The hash runs on a thread of its own while the bytes go to disk: the two only read the
    /// image, and each takes about as long as the other (SHA-256 about 2 GB/s, a direct write
    /// about as fast), so a shard takes the time of one rather than the sum.
    public func write(directory: String, firstSample: Int, overwrite: Bool = true) throws -> ShardRecord {
        let name = ShardLayout.fileName(shardIndex: shardIndex)
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        let digest = BackgroundWork { [self] in
            var hash = SHA256()
            withBytes { hash.update($0) }
            return hash.finalizeHex()
        }
        // The buffer is handed back only after this returns, so the hash must be done by then.
        let written = Result { try FileIO.writeAtomically(buffer, count: byteCount, to: path, overwrite: overwrite) }
        let sha = try digest.wait()
        _ = try written.get()
        return ShardRecord(file: name, sha256: sha, bytes: byteCount, sampleCount: sampleCount, firstSample: firstSample)
    }
}

/// One entry of index.json's "shards" array.
/// A written shard, as index.json's `shards[]` lists it (`ShardIndex.Shard`).
public struct ShardRecord: Codable, Sendable, Equatable {
    /// File name relative to the index.
    public var file: String
    public var sha256: String
    public var bytes: Int
    public var sampleCount: Int
    /// Global index of the shard's first sample (samples are numbered across shards in order).
    public var firstSample: Int

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case file, sha256, bytes, sampleCount = "sample_count", firstSample = "first_sample"
    }

    public init(file: String, sha256: String, bytes: Int, sampleCount: Int, firstSample: Int) {
        self.file = file
        self.sha256 = sha256
        self.bytes = bytes
        self.sampleCount = sampleCount
        self.firstSample = firstSample
    }
}
