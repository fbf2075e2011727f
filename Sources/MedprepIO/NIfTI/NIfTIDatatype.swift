import MedprepCore

/// NIfTI datatype codes as data (nibabel's `data_type_codes`), not scattered literals.
public struct NIfTIDatatype: Sendable, Equatable {
    public let code: Int
    public let name: String
    public let bitpix: Int
    /// The in-memory type; nil for codes we recognise but do not support.
    public let voxelType: VoxelType?
    public let channels: Int

    public static let table: [NIfTIDatatype] = [
        .init(code: 2, name: "uint8", bitpix: 8, voxelType: .uint8, channels: 1),
        .init(code: 4, name: "int16", bitpix: 16, voxelType: .int16, channels: 1),
        .init(code: 8, name: "int32", bitpix: 32, voxelType: .int32, channels: 1),
        .init(code: 16, name: "float32", bitpix: 32, voxelType: .float32, channels: 1),
        .init(code: 64, name: "float64", bitpix: 64, voxelType: .float64, channels: 1),
        .init(code: 128, name: "rgb24", bitpix: 24, voxelType: .uint8, channels: 3),
        .init(code: 256, name: "int8", bitpix: 8, voxelType: .int8, channels: 1),
        .init(code: 512, name: "uint16", bitpix: 16, voxelType: .uint16, channels: 1),
        .init(code: 768, name: "uint32", bitpix: 32, voxelType: .uint32, channels: 1),
        .init(code: 1024, name: "int64", bitpix: 64, voxelType: .int64, channels: 1),
        .init(code: 1280, name: "uint64", bitpix: 64, voxelType: .uint64, channels: 1),
        // Recognised, not supported: named in the error message.
        .init(code: 1, name: "binary", bitpix: 1, voxelType: nil, channels: 1),
        .init(code: 32, name: "complex64", bitpix: 64, voxelType: nil, channels: 1),
        .init(code: 1536, name: "float128", bitpix: 128, voxelType: nil, channels: 1),
        .init(code: 1792, name: "complex128", bitpix: 128, voxelType: nil, channels: 1),
        .init(code: 2048, name: "complex256", bitpix: 256, voxelType: nil, channels: 1),
        .init(code: 2304, name: "rgba32", bitpix: 32, voxelType: nil, channels: 4),
    ]

    public static func forCode(_ code: Int) -> NIfTIDatatype? { table.first { $0.code == code } }

    /// Code used when writing an image of this type and channel count.
    public static func forWriting(_ type: VoxelType, channels: Int) -> NIfTIDatatype? {
        table.first { $0.voxelType == type && $0.channels == channels }
    }

    /// Bytes one voxel takes on disk.
    public var bytesPerVoxel: Int { (voxelType?.byteWidth ?? bitpix / 8) * channels }
}

/// NIfTI xform codes (qform_code / sform_code).
public enum NIfTIXformCode: Int, Sendable {
    case unknown = 0, scanner = 1, aligned = 2, talairach = 3, mni = 4, template = 5
}
