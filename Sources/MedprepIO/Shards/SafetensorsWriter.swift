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

    /// Tensor entries in file order with their data offsets.
    public func layout() -> [(name: String, tensor: SafetensorsTensor, begin: Int, end: Int)] {
        let ordered = tensors.sorted { l, r in
            if l.tensor.dtype.alignmentRank != r.tensor.dtype.alignmentRank {
                return l.tensor.dtype.alignmentRank > r.tensor.dtype.alignmentRank
            }
            return l.name.utf8.lexicographicallyPrecedes(r.name.utf8)
        }
        var offset = 0
        return ordered.map { entry in
            let begin = offset
            offset += entry.tensor.byteCount
            return (entry.name, entry.tensor, begin, offset)
        }
    }

    /// The header JSON, space-padded to a multiple of 8 bytes (without the length prefix).
    public func headerBytes() -> [UInt8] {
        headerBytes(layout())
    }

    private func headerBytes(_ entries: [(name: String, tensor: SafetensorsTensor, begin: Int, end: Int)]) -> [UInt8] {
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
        for e in entries {
            comma()
            SafetensorsWriter.appendQuoted(e.name, to: &out)
            out.append(contentsOf: Array(":{\"dtype\":\"\(e.tensor.dtype.rawValue)\",\"shape\":[".utf8))
            out.append(contentsOf: Array(e.tensor.shape.map(String.init).joined(separator: ",").utf8))
            out.append(contentsOf: Array("],\"data_offsets\":[\(e.begin),\(e.end)]}".utf8))
        }
        out.append(UInt8(ascii: "}"))
        let pad = (8 - out.count % 8) % 8
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: pad))
        return out
    }

    /// The whole file.
    public func serialize() -> [UInt8] {
        let entries = layout()
        let header = headerBytes(entries)
        let dataBytes = entries.last?.end ?? 0
        let total = 8 + header.count + dataBytes
        return HugePages.array(count: total) { (out: UnsafeMutableBufferPointer<UInt8>) in
            let raw = UnsafeMutableRawBufferPointer(out)
            var n = UInt64(header.count).littleEndian
            withUnsafeBytes(of: &n) { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 8) }
            header.withUnsafeBytes { raw.baseAddress!.advanced(by: 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let base = 8 + header.count
            for e in entries where e.end > e.begin {
                e.tensor.withUnsafeBytes { src in
                    (raw.baseAddress! + base + e.begin).copyMemory(from: src.baseAddress!, byteCount: e.end - e.begin)
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
