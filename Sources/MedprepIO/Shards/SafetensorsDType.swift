#if _endian(big)
#error("medprep writes safetensors by copying memory: it assumes a little-endian host")
#endif

/// The safetensors element types medprep reads and writes (the safetensors spelling).
///
/// `alignmentRank` is the position of the dtype in the Rust crate's `Dtype` enum, which is
/// declared "in increasing alignment order"; `safetensors` writes tensors sorted by that
/// rank descending, then by name (byte-wise). Keeping the same order is what makes our files
/// byte-identical to `safetensors.numpy.save_file`.
public enum SafetensorsDType: String, Sendable, CaseIterable, Equatable {
    case BOOL, U8, I8, I16, U16, F16, I32, U32, F32, F64, I64, U64

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .BOOL, .U8, .I8: 1
        case .I16, .U16, .F16: 2
        case .I32, .U32, .F32: 4
        case .F64, .I64, .U64: 8
        }
    }

    /// Rank in the Rust crate's `Dtype` enum (BOOL < U8 < I8 < I16 < U16 < F16 < I32 < U32 < F32
    /// < F64 < I64 < U64; dtypes medprep does not support sit between these and do not change
    /// their relative order).
    public var alignmentRank: Int {
        switch self {
        case .BOOL: 0
        case .U8: 1
        case .I8: 2
        case .I16: 3
        case .U16: 4
        case .F16: 5
        case .I32: 6
        case .U32: 7
        case .F32: 8
        case .F64: 9
        case .I64: 10
        case .U64: 11
        }
    }

    /// The numpy dtype name (`np.dtype(name)`), for documentation and messages.
    public var numpyName: String {
        switch self {
        case .BOOL: "bool"
        case .U8: "uint8"
        case .I8: "int8"
        case .I16: "int16"
        case .U16: "uint16"
        case .F16: "float16"
        case .I32: "int32"
        case .U32: "uint32"
        case .F32: "float32"
        case .F64: "float64"
        case .I64: "int64"
        case .U64: "uint64"
        }
    }

    /// Dtypes that are valid safetensors but that medprep neither writes nor reads.
    static let knownUnsupported: Set<String> = [
        "BF16", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2",
        "C64", "I4", "U4",
    ]
}

/// A Swift element type stored as one safetensors dtype. Float16 has no portable Swift type
/// here: half-precision tensors are built from `[UInt16]` bit patterns (see `Float16Conversion`).
public protocol SafetensorsElement: BitwiseCopyable, Sendable {
    static var safetensorsDType: SafetensorsDType { get }
}

extension Double: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .F64 } }
extension Float: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .F32 } }
extension Int64: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .I64 } }
extension Int32: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .I32 } }
extension Int16: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .I16 } }
extension Int8: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .I8 } }
extension UInt8: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .U8 } }
extension UInt16: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .U16 } }
extension UInt32: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .U32 } }
extension UInt64: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .U64 } }
/// Swift stores `Bool` as one byte, 0 or 1, exactly as numpy's `bool_` (reading maps any
/// non-zero byte to `true`, so a hostile file never produces an invalid `Bool`).
extension Bool: SafetensorsElement { public static var safetensorsDType: SafetensorsDType { .BOOL } }
