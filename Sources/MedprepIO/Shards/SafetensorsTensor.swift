import MedprepCore

/// Contiguous little-endian element storage a tensor's bytes are copied from.
protocol SafetensorsStorage: Sendable {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: SafetensorsStorage where Element: SafetensorsElement {}

/// One tensor to write: a dtype, a shape (C order) and its elements. The elements are kept in
/// their typed array (no copy) until the file is serialized.
public struct SafetensorsTensor: Sendable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    let storage: any SafetensorsStorage
    /// Number of elements (the product of `shape`; 1 for a scalar, shape `[]`).
    public let elementCount: Int

    public var byteCount: Int { elementCount * dtype.itemSize }

    /// A tensor of `values` laid out in C order with `shape`.
    public init<T: SafetensorsElement>(_ values: [T], shape: [Int]) throws {
        try self.init(dtype: T.safetensorsDType, shape: shape, count: values.count, storage: values)
    }

    /// A float16 tensor from bit patterns (see `Float16Conversion.halfBits`).
    public init(float16Bits: [UInt16], shape: [Int]) throws {
        try self.init(dtype: .F16, shape: shape, count: float16Bits.count, storage: float16Bits)
    }

    /// A float16 tensor converted from Float with round-to-nearest-even (numpy's `astype(np.float16)`).
    public static func float16(_ values: [Float], shape: [Int]) throws -> SafetensorsTensor {
        try SafetensorsTensor(float16Bits: Float16Conversion.halfBits(values), shape: shape)
    }

    /// A tensor from raw little-endian bytes of any supported dtype.
    public init(dtype: SafetensorsDType, shape: [Int], littleEndianBytes bytes: [UInt8]) throws {
        guard bytes.count % dtype.itemSize == 0 else {
            throw MedprepError(.invalidArgument, "\(bytes.count) bytes is not a whole number of \(dtype.rawValue) elements.")
        }
        try self.init(dtype: dtype, shape: shape, count: bytes.count / dtype.itemSize, storage: bytes)
    }

    init(dtype: SafetensorsDType, shape: [Int], count: Int, storage: any SafetensorsStorage) throws {
        guard let n = SafetensorsTensor.elementCount(shape) else {
            throw MedprepError(.invalidArgument, "tensor shape \(shape) has a negative dimension or overflows.")
        }
        guard n == count else {
            throw MedprepError(.invalidArgument, "tensor shape \(shape) needs \(n) elements, got \(count).")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.elementCount = n
    }

    /// Calls `body` with the tensor's little-endian bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// The product of `shape` (1 for `[]`), nil when a dimension is negative or it overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }
}
