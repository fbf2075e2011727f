import MedprepCore

/// Accumulates samples and stacks each field into one tensor per shard (docs/shard-format.md).
/// Samples keep the order they are appended in; the same samples give the same bytes.
public struct ShardBuilder: Sendable {
    public let layout: ShardLayout
    public let medprepVersion: String
    public private(set) var count = 0

    private var imageF32: [Float] = []
    private var imageF16: [UInt16] = []
    private var label8: [UInt8] = []
    private var label16: [UInt16] = []
    private var maps: [String: [Float]] = [:]
    private var caseIndex: [Int32] = []
    private var sliceIndex: [Int32] = []
    private var sliceCount: [Int32] = []
    private var position: [Double] = []
    private var sliceCoord: [Double] = []
    private var pcl: [UInt8] = []
    private var presence: [UInt8] = []
    private let reserve: Int

    /// `capacity`: samples per shard to reserve memory for (0: grow as needed).
    public init(layout: ShardLayout, medprepVersion: String, capacity: Int = 0) {
        self.layout = layout
        self.medprepVersion = medprepVersion
        reserve = max(0, capacity)
        reset()
    }

    /// Drops the accumulated samples.
    public mutating func reset() {
        let n = reserve
        let plane = layout.height * layout.width
        count = 0
        imageF32 = []
        imageF16 = []
        if layout.imageDType == .float32 { imageF32.reserveCapacity(n * layout.channels * plane) } else { imageF16.reserveCapacity(n * layout.channels * plane) }
        label8 = []
        label16 = []
        if layout.labelDType == .U8 { label8.reserveCapacity(n * plane) } else { label16.reserveCapacity(n * plane) }
        maps = [:]
        for m in layout.mapTensors {
            var a: [Float] = []
            let s = layout.mapSize(scale: m.scale)
            a.reserveCapacity(n * layout.classCount * s.height * s.width)
            maps[m.name] = a
        }
        caseIndex = []; caseIndex.reserveCapacity(n)
        sliceIndex = []; sliceIndex.reserveCapacity(n)
        sliceCount = []; sliceCount.reserveCapacity(n)
        position = []; position.reserveCapacity(n)
        sliceCoord = []; sliceCoord.reserveCapacity(n)
        pcl = []; pcl.reserveCapacity(n)
        presence = []; presence.reserveCapacity(n * layout.classCount)
    }

    /// Checks a sample against the layout and appends it. Nothing is appended when it throws.
    public mutating func append(_ s: ShardSample) throws {
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
        var present = [UInt8](repeating: 0, count: K)
        for v in s.label {
            guard Int(v) < K else { throw bad("label value '\(v)' is not below the class count \(K).") }
            present[Int(v)] = 1
        }
        if let given = s.classPresence {
            guard given.count == K, given.allSatisfy({ $0 <= 1 }) else {
                throw bad("class presence must be \(K) values of 0 or 1, got \(given.count) values.")
            }
            present = given
        }
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

        // Everything checked: append.
        if L.imageDType == .float32 {
            imageF32.append(contentsOf: s.image)
        } else {
            imageF16.append(contentsOf: Float16Conversion.halfBits(s.image))
        }
        if L.labelDType == .U8 {
            label8.append(contentsOf: s.label.lazy.map { UInt8(truncatingIfNeeded: $0) })
        } else {
            label16.append(contentsOf: s.label)
        }
        for m in L.mapTensors {
            let values = (m.kind == "sdf" ? s.sdf : s.rrw)[m.scale]!
            maps[m.name, default: []].append(contentsOf: values)
        }
        caseIndex.append(Int32(s.caseIndex))
        sliceIndex.append(Int32(s.sliceIndex))
        sliceCount.append(Int32(s.sliceCount))
        position.append(ShardLayout.position(sliceIndex: s.sliceIndex, sliceCount: s.sliceCount))
        sliceCoord.append(s.sliceCoordMM)
        pcl.append(UInt8(partition))
        presence.append(contentsOf: present)
        count += 1
    }

    /// The shard's `__metadata__`.
    public func metadata(shardIndex: Int) -> [String: String] {
        [
            "format": ShardLayout.format,
            "format_version": ShardLayout.formatVersion,
            "shard_index": String(shardIndex),
            "sample_count": String(count),
            "medprep_version": medprepVersion,
        ]
    }

    /// The shard as a writer (tensors share the builder's arrays; nothing is copied yet).
    public func makeWriter(shardIndex: Int) throws -> SafetensorsWriter {
        guard count > 0 else { throw MedprepError(.invalidArgument, "shard \(shardIndex) has no samples.") }
        let L = layout
        let N = count
        var w = SafetensorsWriter(metadata: metadata(shardIndex: shardIndex))
        let imageShape = [N, L.channels, L.height, L.width]
        if L.imageDType == .float32 {
            try w.add("image", imageF32, shape: imageShape)
        } else {
            try w.add("image", SafetensorsTensor(float16Bits: imageF16, shape: imageShape))
        }
        if L.labelDType == .U8 {
            try w.add("label", label8, shape: [N, L.height, L.width])
        } else {
            try w.add("label", label16, shape: [N, L.height, L.width])
        }
        for m in L.mapTensors {
            let size = L.mapSize(scale: m.scale)
            try w.add(m.name, maps[m.name] ?? [], shape: [N, L.classCount, size.height, size.width])
        }
        try w.add("case_index", caseIndex, shape: [N])
        try w.add("slice_index", sliceIndex, shape: [N])
        try w.add("slice_count", sliceCount, shape: [N])
        try w.add("position", position, shape: [N])
        try w.add("slice_coord_mm", sliceCoord, shape: [N])
        try w.add("pcl_partition", pcl, shape: [N])
        try w.add("class_presence", presence, shape: [N, L.classCount])
        return w
    }

    /// Writes the shard atomically to `directory/fileName(shardIndex)`, returns its index
    /// entry and resets the builder for the next shard.
    public mutating func writeShard(directory: String, shardIndex: Int, firstSample: Int, overwrite: Bool = true) throws -> ShardRecord {
        let name = ShardLayout.fileName(shardIndex: shardIndex)
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        let written = try makeWriter(shardIndex: shardIndex).write(to: path, overwrite: overwrite)
        let record = ShardRecord(file: name, sha256: written.sha256, bytes: written.bytes, sampleCount: count, firstSample: firstSample)
        reset()
        return record
    }
}

/// One entry of index.json's "shards" array.
public struct ShardRecord: Sendable, Equatable {
    /// File name relative to the index.
    public var file: String
    public var sha256: String
    public var bytes: Int
    public var sampleCount: Int
    /// Global index of the shard's first sample (samples are numbered across shards in order).
    public var firstSample: Int

    public init(file: String, sha256: String, bytes: Int, sampleCount: Int, firstSample: Int) {
        self.file = file
        self.sha256 = sha256
        self.bytes = bytes
        self.sampleCount = sampleCount
        self.firstSample = firstSample
    }

    public var json: JSON {
        .object([
            ("file", .string(file)), ("sha256", .string(sha256)), ("bytes", .int(bytes)),
            ("sample_count", .int(sampleCount)), ("first_sample", .int(firstSample)),
        ])
    }
}
