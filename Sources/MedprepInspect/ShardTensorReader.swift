import MedprepCore
import MedprepIO
import MedprepDataset

/// Reads parts of a shard's tensors (whole tensors or single samples along the first axis)
/// with positioned reads, after validating the header against the file size. Used by
/// `medprep inspect`, which needs labels and a few slices, never whole shards in memory.
public final class ShardTensorReader {
    public let path: String
    public let header: SafetensorsHeader
    private let handle: FileIO.ReadHandle

    public init(path: String) throws {
        self.path = path
        header = try SafetensorsReader.readHeader(path: path)
        handle = try FileIO.ReadHandle(path)
    }

    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let i = header.info(name) else {
            throw MedprepError(.mismatch, path: path, "no tensor named '\(name)' (the file has: \(header.names.joined(separator: ", "))).")
        }
        return i
    }

    /// Rows along the first axis (all when nil), as raw little-endian bytes.
    public func raw(_ name: String, rows: Range<Int>? = nil) throws -> (info: SafetensorsTensorInfo, bytes: [UInt8]) {
        let i = try info(name)
        let n = i.shape.first ?? 1
        let r = rows ?? 0..<n
        guard r.lowerBound >= 0, r.upperBound <= n else {
            throw MedprepError(.mismatch, path: path, "tensor '\(name)' has \(n) rows, rows \(r) were asked for.")
        }
        let rowBytes = n == 0 ? 0 : i.byteCount / n
        let start = header.dataStart + i.begin + r.lowerBound * rowBytes
        let count = r.count * rowBytes
        let bytes = try handle.read(count: count, at: start)
        guard bytes.count == count else {
            throw MedprepError(.truncated, path: path, "file ends inside tensor '\(name)' (\(bytes.count) of \(count) bytes read).")
        }
        return (i, bytes)
    }

    /// F32 or F16 rows as Float.
    public func floats(_ name: String, rows: Range<Int>? = nil) throws -> [Float] {
        let (i, b) = try raw(name, rows: rows)
        switch i.dtype {
        case .F32:
            return b.withUnsafeBytes { p in (0..<(b.count / 4)).map { Float(bitPattern: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian) } }
        case .F16:
            let bits = b.withUnsafeBytes { p in (0..<(b.count / 2)).map { p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self).littleEndian } }
            return Float16Conversion.floats(fromHalfBits: bits)
        default:
            throw MedprepError(.mismatch, path: path, "tensor '\(name)' is \(i.dtype.rawValue), expected F32 or F16.")
        }
    }

    /// U8, U16 or I32 rows as Int.
    public func ints(_ name: String, rows: Range<Int>? = nil) throws -> [Int] {
        let (i, b) = try raw(name, rows: rows)
        switch i.dtype {
        case .U8: return b.map(Int.init)
        case .U16:
            return b.withUnsafeBytes { p in (0..<(b.count / 2)).map { Int(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self).littleEndian) } }
        case .I32:
            return b.withUnsafeBytes { p in (0..<(b.count / 4)).map { Int(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self).littleEndian) } }
        default:
            throw MedprepError(.mismatch, path: path, "tensor '\(name)' is \(i.dtype.rawValue), expected U8, U16 or I32.")
        }
    }

    /// Counts of each label value 0..<classCount over all samples (values >= classCount are
    /// counted in the last slot of the result, index classCount).
    public func labelHistogram(classCount: Int) throws -> [Int] {
        let (i, b) = try raw("label")
        var h = [Int](repeating: 0, count: classCount + 1)
        switch i.dtype {
        case .U8:
            var small = [Int](repeating: 0, count: 256)
            for v in b { small[Int(v)] += 1 }
            for (v, c) in small.enumerated() where c > 0 { h[min(v, classCount)] += c }
        case .U16:
            b.withUnsafeBytes { p in
                for k in 0..<(b.count / 2) {
                    let v = Int(p.loadUnaligned(fromByteOffset: k * 2, as: UInt16.self).littleEndian)
                    h[min(v, classCount)] += 1
                }
            }
        default:
            throw MedprepError(.mismatch, path: path, "tensor 'label' is \(i.dtype.rawValue), expected U8 or U16.")
        }
        return h
    }
}
