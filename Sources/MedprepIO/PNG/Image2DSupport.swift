#if canImport(Glibc)
import Glibc
#endif

/// Small helpers shared by the PNG and JPEG codecs.
enum Image2DSupport {
    /// Copies `count` samples from a C buffer into a Swift array.
    static func copySamples<T>(_ src: UnsafeMutablePointer<UInt8>?, count: Int, as: T.Type) -> [T] {
        guard count > 0, let src else { return [] }
        return [T](unsafeUninitializedCapacity: count) { buf, initialized in
            memcpy(buf.baseAddress!, src, count * MemoryLayout<T>.stride)
            initialized = count
        }
    }

    /// "89 50 4e 47" style hex for messages.
    static func hexBytes<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0xf)]]) }.joined(separator: " ")
    }

    /// The NUL-terminated message a C shim wrote.
    static func cMessage(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { b in
            let end = b.firstIndex(of: 0) ?? b.count
            return String(decoding: b[0..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
