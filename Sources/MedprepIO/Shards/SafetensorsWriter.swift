import MedprepCore

/// Builds a safetensors file (https://huggingface.co/docs/safetensors) byte-identical to what
/// `safetensors.numpy.save_file(tensors, path, metadata=...)` writes for the same tensors:
///
/// - 8 bytes: little-endian u64 `n`, the header length;
/// - `n` bytes: compact JSON (serde_json's layout and escaping), `__metadata__` first when
///   present, then one entry per tensor `{"dtype":..,"shape":[..],"data_offsets":[begin,end]}`,
///   padded with spaces to a multiple of 8 bytes;
/// - the data: tensors in header order, back to back, no gaps.
///
/// Tensors are ordered by dtype alignment rank descending (U64, I64, F64, F32, U32, I32, F16,
/// U16, I16, I8, U8, BOOL), then by name compared byte-wise as UTF-8, so each tensor starts at
/// an offset that is a multiple of its item size. Python's `safetensors` writes the
/// `__metadata__` keys in a random order (a Rust `HashMap`); medprep writes them sorted
/// byte-wise, so the output never depends on insertion order, thread count or a hash seed.
/// Both orders are valid and every reader treats them the same.
public struct SafetensorsWriter: Sendable {
    /// The `__metadata__` map; nil writes no `__metadata__` key at all (an empty map writes `{}`).
    public var metadata: [String: String]?
    public private(set) var tensors: [(name: String, tensor: SafetensorsTensor)] = []
    private var names: Set<[UInt8]> = []

    public init(metadata: [String: String]? = nil) {
        self.metadata = metadata
    }

    /// Adds a tensor. Names are unique (compared as UTF-8 bytes); `__metadata__` is reserved.
    public mutating func add(_ name: String, _ tensor: SafetensorsTensor) throws {
        guard name != "__metadata__" else {
            throw MedprepError(.invalidArgument, "'__metadata__' is reserved and cannot name a tensor.")
        }
        guard names.insert(Array(name.utf8)).inserted else {
            throw MedprepError(.invalidArgument, "tensor '\(name)' was added twice.")
        }
        tensors.append((name, tensor))
    }

    public mutating func add<T: SafetensorsElement>(_ name: String, _ values: [T], shape: [Int]) throws {
        try add(name, SafetensorsTensor(values, shape: shape))
    }

    /// A tensor as the header sees it: planning a file needs no element bytes.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: SafetensorsDType
        public var shape: [Int]
        public var byteCount: Int

        public init(name: String, dtype: SafetensorsDType, shape: [Int], byteCount: Int) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.byteCount = byteCount
        }
    }

    /// Where every tensor lies in the file, and the header that says so.
    public struct Plan: Sendable {
        /// Tensors in file order: each one's position in the list given to `plan`, and its byte
        /// range relative to the start of the data buffer.
        public var order: [(index: Int, begin: Int, end: Int)]
        /// The header JSON, space-padded to a multiple of 8 bytes (without the length prefix).
        public var header: [UInt8]
        /// File offset of the data buffer: the 8-byte length, then the header.
        public var dataStart: Int { 8 + header.count }
        public var fileBytes: Int { dataStart + (order.last?.end ?? 0) }

        /// Writes the length prefix and the header: the file's first `dataStart` bytes.
        public func writeHeader(to start: UnsafeMutableRawPointer) {
            start.storeBytes(of: UInt64(header.count).littleEndian, as: UInt64.self)
            header.withUnsafeBytes { (start + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// Orders the tensors (alignment rank descending, then name as UTF-8 bytes), gives each its
    /// data offsets and builds the header.
    public static func plan(metadata: [String: String]?, tensors: [Entry]) -> Plan {
        let ordered = tensors.indices.sorted { li, ri in
            let l = tensors[li], r = tensors[ri]
            if l.dtype.alignmentRank != r.dtype.alignmentRank { return l.dtype.alignmentRank > r.dtype.alignmentRank }
            return l.name.utf8.lexicographicallyPrecedes(r.name.utf8)
        }
        var offset = 0
        let order = ordered.map { i in
            let begin = offset
            offset += tensors[i].byteCount
            return (index: i, begin: begin, end: offset)
        }
        return Plan(order: order, header: headerBytes(metadata: metadata, tensors: tensors, order: order))
    }

    private var entries: [Entry] {
        tensors.map { Entry(name: $0.name, dtype: $0.tensor.dtype, shape: $0.tensor.shape, byteCount: $0.tensor.byteCount) }
    }

    /// Tensor entries in file order with their data offsets.
    public func layout() -> [(name: String, tensor: SafetensorsTensor, begin: Int, end: Int)] {
        SafetensorsWriter.plan(metadata: metadata, tensors: entries).order.map { e in
            (tensors[e.index].name, tensors[e.index].tensor, e.begin, e.end)
        }
    }

    /// The header JSON, space-padded to a multiple of 8 bytes (without the length prefix).
    public func headerBytes() -> [UInt8] {
        SafetensorsWriter.plan(metadata: metadata, tensors: entries).header
    }

    private static func headerBytes(metadata: [String: String]?, tensors: [Entry], order: [(index: Int, begin: Int, end: Int)]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func comma() {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
        }
        if let metadata {
            comma()
            SafetensorsWriter.appendQuoted("__metadata__", to: &out)
            out.append(contentsOf: Array(":{".utf8))
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, k) in keys.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                SafetensorsWriter.appendQuoted(k, to: &out)
                out.append(UInt8(ascii: ":"))
                SafetensorsWriter.appendQuoted(metadata[k]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        for e in order {
            let t = tensors[e.index]
            comma()
            SafetensorsWriter.appendQuoted(t.name, to: &out)
            out.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8))
            out.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
            out.append(contentsOf: Array("],\"data_offsets\":[\(e.begin),\(e.end)]}".utf8))
        }
        out.append(UInt8(ascii: "}"))
        let pad = (8 - out.count % 8) % 8
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: pad))
        return out
    }

    /// The whole file.
    public func serialize() -> [UInt8] {
        let plan = SafetensorsWriter.plan(metadata: metadata, tensors: entries)
        return HugePages.array(count: plan.fileBytes) { (out: UnsafeMutableBufferPointer<UInt8>) in
            let base = UnsafeMutableRawPointer(out.baseAddress!)
            plan.writeHeader(to: base)
            for e in plan.order where e.end > e.begin {
                tensors[e.index].tensor.withUnsafeBytes { src in
                    (base + plan.dataStart + e.begin).copyMemory(from: src.baseAddress!, byteCount: e.end - e.begin)
                }
            }
        }
    }

    /// What `write(to:)` wrote.
    public struct Written: Sendable, Equatable {
        public var path: String
        public var bytes: Int
        /// SHA-256 of the file, lower-case hex.
        public var sha256: String
    }

    /// Serializes and writes atomically (temporary name, fsync, rename).
    @discardableResult
    public func write(to path: String, overwrite: Bool = true) throws -> Written {
        let bytes = serialize()
        try FileIO.writeAtomically(bytes, to: path, overwrite: overwrite)
        return Written(path: path, bytes: bytes.count, sha256: SHA256.hex(bytes))
    }

    /// serde_json's string escaping: `"` `\` and \b \f \n \r \t short forms, other control
    /// characters as \u00xx (lower-case hex), everything else (DEL and non-ASCII included) raw UTF-8.
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x08: out.append(contentsOf: [92, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [92, UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
