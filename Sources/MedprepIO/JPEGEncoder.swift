import CMedprep
import MedprepCore

/// Baseline JPEG writer (libjpeg-turbo) for 8-bit grey and RGB: used for synthetic datasets.
public enum JPEGEncoder {
    public static func encode(_ image: MedicalImage, quality: Int = 90) throws -> [UInt8] {
        guard case .uint8(let px) = image.voxels, image.dims.count == 2, image.channels == 1 || image.channels == 3 else {
            throw MedprepError(.unsupported, "JPEG writing needs a 2D uint8 grey or RGB image, got \(image.voxels.type.rawValue) x\(image.channels) with dims \(image.dims).")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = px.withUnsafeBufferPointer {
            mp_jpeg_encode($0.baseAddress, Int32(image.dims[0]), Int32(image.dims[1]), Int32(image.channels), Int32(quality), &out, &len, &err, err.count)
        }
        guard rc == Int32(MP_OK), let out else {
            throw MedprepError(.corruptImage, "JPEG encoding failed: \(cMessage(err)).")
        }
        defer { mp_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    public static func write(_ image: MedicalImage, to path: String, quality: Int = 90, overwrite: Bool = true) throws {
        do { try FileIO.writeAtomically(try encode(image, quality: quality), to: path, overwrite: overwrite) } catch let e as MedprepError { throw e.at(path) }
    }
}
