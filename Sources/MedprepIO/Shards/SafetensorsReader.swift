import MedprepCore

/// One tensor entry of a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Byte range inside the data buffer (which starts right after the header).
    public var begin: Int
    public var end: Int

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { end - begin }
}

/// A parsed and validated safetensors header.
public struct SafetensorsHeader: Sendable, Equatable {
    /// The JSON length `n` from the first 8 bytes (padding included).
    public var headerLength: Int
    /// `__metadata__`, nil when the file has none (or `null`).
    public var metadata: [String: String]?
    /// Tensors in data-offset order (the order their bytes appear in the file).
    public var tensors: [SafetensorsTensorInfo]

    /// File offset of the data buffer: 8 + n.
    public var dataStart: Int { 8 + headerLength }
    /// Size of the data buffer the header describes.
    public var dataLength: Int { tensors.last?.end ?? 0 }
    /// The size a file with this header must have.
    public var fileSize: Int { dataStart + dataLength }

    public func info(_ name: String) -> SafetensorsTensorInfo? {
        tensors.first { $0.name.utf8.elementsEqual(name.utf8) }
    }

    public var names: [String] { tensors.map(\.name) }
}

/// Reads and validates safetensors files (`medprep verify`). The rules are those the Rust
/// `safetensors` crate enforces when it deserializes, plus a few stricter ones:
///
/// - the file has at least 8 bytes; the header length `n` is at most 100,000,000 and
///   8 + n is within the file;
/// - the header is valid UTF-8 and one JSON object (whitespace around it allowed, so the
///   space padding is fine), nested at most 128 deep;
/// - `__metadata__` is absent, `null`, or an object whose values are all strings;
/// - every other key is a tensor: an object with exactly `dtype` (a string naming a dtype
///   medprep supports), `shape` (non-negative integers) and `data_offsets` ([begin, end],
///   non-negative integers); the element count × item size does not overflow and equals
///   end − begin;
/// - sorted by offsets, the tensors tile the data buffer exactly: each begins where the
///   previous ended (no overlap, no hole), starting at 0, and the last one ends at the end of
///   the file (no trailing bytes, nothing missing).
///
/// Stricter than the crate: duplicate keys (which serde_json resolves silently, last wins) and
/// unknown fields in a tensor entry are errors; dtypes the crate knows but medprep does not
/// (BF16, F8_*, ...) are reported as unsupported.
///
/// Every problem is a `MedprepError` whose path is the file and whose message names the tensor.
public enum SafetensorsReader {
    public static let maxHeaderLength = 100_000_000

    /// Reads the whole file and validates it.
    public static func read(path: String) throws -> SafetensorsFile {
        let bytes = try FileIO.readAll(path)
        return try parse(bytes, path: path)
    }

    /// Validates a whole file already in memory.
    public static func parse(_ bytes: [UInt8], path: String) throws -> SafetensorsFile {
        let header = try bytes.withUnsafeBytes { try parseHeader($0, fileSize: bytes.count, path: path) }
        return SafetensorsFile(path: path, header: header, bytes: bytes)
    }

    /// Reads only the header (at most 100 MB) and validates it against the file's size, without
    /// reading the data.
    public static func readHeader(path: String) throws -> SafetensorsHeader {
        let h = try FileIO.ReadHandle(path)
        let prefix = try h.read(count: 8, at: 0)
        guard prefix.count == 8 else {
            throw MedprepError(.truncated, path: path, "file is \(h.size) bytes, too short for the 8-byte safetensors header length.")
        }
        let n = try headerLength(prefix, fileSize: h.size, path: path)
        let all = try h.read(count: 8 + n, at: 0)
        guard all.count == 8 + n else {
            throw MedprepError(.truncated, path: path, "file ends after \(all.count) bytes, inside the header.")
        }
        return try all.withUnsafeBytes { try parseHeader($0, fileSize: h.size, path: path) }
    }

    /// Checks the 8-byte length prefix; returns n.
    static func headerLength<C: Collection>(_ prefix: C, fileSize: Int, path: String) throws -> Int where C.Element == UInt8 {
        var n: UInt64 = 0
        for (i, b) in prefix.prefix(8).enumerated() { n |= UInt64(b) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderLength) else {
            throw MedprepError(.tooLarge, path: path,
                               "safetensors header length is \(n) bytes, more than the limit \(maxHeaderLength).")
        }
        let len = Int(n)
        guard 8 + len <= fileSize else {
            throw MedprepError(.truncated, path: path,
                               "safetensors header length is \(len) bytes but the file has only \(fileSize - 8) bytes after the length.")
        }
        return len
    }

    /// Parses and validates the header. `buffer` holds at least the first 8 + n bytes of the file;
    /// `fileSize` is the size of the whole file.
    static func parseHeader(_ buffer: UnsafeRawBufferPointer, fileSize: Int, path: String) throws -> SafetensorsHeader {
        guard buffer.count >= 8, fileSize >= 8 else {
            throw MedprepError(.truncated, path: path, "file is \(fileSize) bytes, too short for the 8-byte safetensors header length.")
        }
        let n = try headerLength(buffer.prefix(8), fileSize: fileSize, path: path)
        let json = UnsafeRawBufferPointer(rebasing: buffer[8..<(8 + n)])
        guard String(validating: json, as: UTF8.self) != nil else {
            throw MedprepError(.badHeader, path: path, "safetensors header is not valid UTF-8.")
        }
        let root: HeaderJSON
        do {
            root = try HeaderJSON.parse(json)
        } catch {
            throw MedprepError(.badHeader, path: path, "safetensors header is not valid JSON: \(error.message) at header byte \(error.offset).")
        }
        guard case .object(let members) = root else {
            throw MedprepError(.badHeader, path: path, "safetensors header is \(root.kind), expected a JSON object.")
        }

        var metadata: [String: String]?
        var seen = Set<[UInt8]>()
        var tensors: [SafetensorsTensorInfo] = []
        tensors.reserveCapacity(members.count)
        for (key, value) in members {
            guard seen.insert(Array(key.utf8)).inserted else {
                throw MedprepError(.badHeader, path: path, "safetensors header has the key '\(key)' twice.")
            }
            if key.utf8.elementsEqual("__metadata__".utf8) {
                metadata = try parseMetadata(value, path: path)
            } else {
                tensors.append(try parseTensor(key, value, path: path))
            }
        }

        // The crate's validate(): sort by offsets, then they must tile [0, end) exactly.
        tensors.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous: String?
        for t in tensors {
            if t.begin != cursor {
                let after = previous.map { "tensor '\($0)' ends" } ?? "the data buffer starts"
                if t.begin < cursor {
                    throw MedprepError(.badHeader, path: path,
                                       "tensor '\(t.name)' data_offsets [\(t.begin), \(t.end)] overlap the bytes before \(cursor) (\(after) at \(cursor)).")
                }
                throw MedprepError(.badHeader, path: path,
                                   "tensor '\(t.name)' data_offsets [\(t.begin), \(t.end)] leave a hole of \(t.begin - cursor) bytes (\(after) at \(cursor)).")
            }
            cursor = t.end
            previous = t.name
        }
        let dataAvailable = fileSize - 8 - n
        if cursor > dataAvailable {
            let last = previous.map { " (tensor '\($0)' ends at data byte \(cursor))" } ?? ""
            throw MedprepError(.truncated, path: path,
                               "tensor data needs \(cursor) bytes after the header but the file has \(dataAvailable)\(last).")
        }
        if cursor < dataAvailable {
            throw MedprepError(.badHeader, path: path,
                               "the file has \(dataAvailable - cursor) bytes after the last tensor's data that no tensor covers.")
        }
        return SafetensorsHeader(headerLength: n, metadata: metadata, tensors: tensors)
    }

    static func parseMetadata(_ value: HeaderJSON, path: String) throws -> [String: String]? {
        switch value {
        case .null:
            return nil
        case .object(let members):
            var out: [String: String] = [:]
            for (k, v) in members {
                guard case .string(let s) = v else {
                    throw MedprepError(.badHeader, path: path, "__metadata__ value of '\(k)' is \(v.kind), expected a string.")
                }
                guard out.updateValue(s, forKey: k) == nil else {
                    throw MedprepError(.badHeader, path: path, "__metadata__ has the key '\(k)' twice.")
                }
            }
            return out
        default:
            throw MedprepError(.badHeader, path: path, "__metadata__ is \(value.kind), expected an object of strings.")
        }
    }

    static func parseTensor(_ name: String, _ value: HeaderJSON, path: String) throws -> SafetensorsTensorInfo {
        func bad(_ message: String) -> MedprepError { MedprepError(.badHeader, path: path, "tensor '\(name)': \(message)") }
        guard case .object(let fields) = value else { throw bad("entry is \(value.kind), expected an object.") }
        var dtypeText: String?
        var shape: [Int]?
        var offsets: [Int]?
        var seen = Set<String>()
        func naturals(_ v: HeaderJSON, _ field: String) throws -> [Int] {
            guard case .array(let items) = v else { throw bad("'\(field)' is \(v.kind), expected an array of non-negative integers.") }
            return try items.map { item in
                guard case .integer(let x) = item, x >= 0 else {
                    let text: String
                    switch item {
                    case .integer(let x): text = String(x)
                    case .number(let s): text = s
                    default: text = item.kind
                    }
                    throw bad("'\(field)' holds '\(text)', expected non-negative integers that fit in 64 bits.")
                }
                return x
            }
        }
        for (k, v) in fields {
            guard seen.insert(k).inserted else { throw bad("field '\(k)' appears twice.") }
            switch k {
            case "dtype":
                guard case .string(let s) = v else { throw bad("'dtype' is \(v.kind), expected a string.") }
                dtypeText = s
            case "shape":
                shape = try naturals(v, "shape")
            case "data_offsets":
                let o = try naturals(v, "data_offsets")
                guard o.count == 2 else { throw bad("'data_offsets' has \(o.count) values, expected [begin, end].") }
                offsets = o
            default:
                throw bad("unknown field '\(k)' (expected dtype, shape, data_offsets).")
            }
        }
        guard let dtypeText else { throw bad("missing 'dtype'.") }
        guard let shape else { throw bad("missing 'shape'.") }
        guard let offsets else { throw bad("missing 'data_offsets'.") }
        guard let dtype = SafetensorsDType(rawValue: dtypeText) else {
            if SafetensorsDType.knownUnsupported.contains(dtypeText) {
                throw MedprepError(.unsupported, path: path,
                                   "tensor '\(name)': dtype '\(dtypeText)' is valid safetensors but medprep does not read it.")
            }
            throw MedprepError(.unsupported, path: path,
                               "tensor '\(name)': unknown dtype '\(dtypeText)' (expected one of \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))).")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard end >= begin else { throw bad("data_offsets [\(begin), \(end)] end before they begin.") }
        guard let count = SafetensorsTensor.elementCount(shape) else {
            throw MedprepError(.mismatch, path: path, "tensor '\(name)': shape \(shape) overflows.")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw MedprepError(.mismatch, path: path, "tensor '\(name)': shape \(shape) × \(dtype.itemSize) bytes overflows.") }
        guard bytes == end - begin else {
            throw MedprepError(.mismatch, path: path,
                               "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(bytes) bytes but data_offsets [\(begin), \(end)] span \(end - begin).")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }
}

/// A validated safetensors file held in memory, with typed access to its tensors.
public struct SafetensorsFile: Sendable {
    public let path: String
    public let header: SafetensorsHeader
    /// The whole file.
    public let bytes: [UInt8]

    public var metadata: [String: String]? { header.metadata }
    public var tensors: [SafetensorsTensorInfo] { header.tensors }

    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let i = header.info(name) else {
            throw MedprepError(.mismatch, path: path, "no tensor named '\(name)' (the file has: \(header.names.joined(separator: ", "))).")
        }
        return i
    }

    /// The tensor's raw little-endian bytes.
    public func rawBytes(_ name: String) throws -> ArraySlice<UInt8> {
        let i = try info(name)
        return bytes[(header.dataStart + i.begin)..<(header.dataStart + i.end)]
    }

    /// The tensor's elements as `T`; the file's dtype must be `T`'s (BOOL reads as Bool, any
    /// non-zero byte being true).
    public func values<T: SafetensorsElement>(_ name: String, as type: T.Type = T.self) throws -> [T] {
        let i = try info(name)
        guard i.dtype == T.safetensorsDType else {
            throw MedprepError(.mismatch, path: path,
                               "tensor '\(name)' is \(i.dtype.rawValue), not \(T.safetensorsDType.rawValue).")
        }
        let count = i.elementCount
        let start = header.dataStart + i.begin
        if T.self == Bool.self {
            let flags = (0..<count).map { bytes[start + $0] != 0 }
            return flags as! [T]
        }
        return bytes.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: count) { buf, n in
                if count > 0 {
                    UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: raw.baseAddress! + start, byteCount: count * MemoryLayout<T>.stride)
                }
                n = count
            }
        }
    }

    /// A float16 tensor's bit patterns.
    public func float16Bits(_ name: String) throws -> [UInt16] {
        let i = try info(name)
        guard i.dtype == .F16 else {
            throw MedprepError(.mismatch, path: path, "tensor '\(name)' is \(i.dtype.rawValue), not F16.")
        }
        let slice = bytes[(header.dataStart + i.begin)..<(header.dataStart + i.end)]
        return stride(from: slice.startIndex, to: slice.endIndex, by: 2).map { UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8 }
    }

    /// An F32 or F16 tensor as Float (F16 converted exactly).
    public func floats(_ name: String) throws -> [Float] {
        let i = try info(name)
        switch i.dtype {
        case .F32: return try values(name, as: Float.self)
        case .F16: return Float16Conversion.floats(fromHalfBits: try float16Bits(name))
        default:
            throw MedprepError(.mismatch, path: path, "tensor '\(name)' is \(i.dtype.rawValue), expected F32 or F16.")
        }
    }

    /// The tensor as a writable `SafetensorsTensor` (for round trips).
    public func tensor(_ name: String) throws -> SafetensorsTensor {
        let i = try info(name)
        return try SafetensorsTensor(dtype: i.dtype, shape: i.shape, littleEndianBytes: Array(try rawBytes(name)))
    }
}
