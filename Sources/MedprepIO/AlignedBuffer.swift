#if canImport(Glibc)
import Glibc
#endif
import MedprepCore

/// Page-aligned memory an O_DIRECT write can take its bytes from: the kernel copies straight out
/// of it to the device, which needs the address and the length to be multiples of the block size
/// (4096 covers every device). Meant to be kept and reused (a shard's file image): fresh memory
/// costs a page fault and a zeroed page for every 4 KiB, every time.
///
/// Not synchronised: one thread uses it at a time, handing it over as a whole.
public final class AlignedBuffer: @unchecked Sendable {
    public static let alignment = 4096

    public private(set) var base: UnsafeMutableRawPointer
    /// Usable bytes, always a positive multiple of `alignment`.
    public private(set) var capacity: Int

    public init(capacity: Int) {
        self.capacity = AlignedBuffer.roundUp(max(1, capacity))
        base = AlignedBuffer.allocate(self.capacity)
    }

    deinit { free(base) }

    /// `count` rounded up to a multiple of `alignment`.
    public static func roundUp(_ count: Int) -> Int {
        (count + alignment - 1) & ~(alignment - 1)
    }

    /// Makes the buffer hold at least `count` bytes, keeping its first `preserving` bytes.
    public func reserve(_ count: Int, preserving: Int) {
        guard count > capacity else { return }
        let bigger = AlignedBuffer.roundUp(count)
        let fresh = AlignedBuffer.allocate(bigger)
        fresh.copyMemory(from: base, byteCount: min(preserving, capacity))
        free(base)
        base = fresh
        capacity = bigger
    }

    private static func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&p, alignment, count) == 0, let p else {
            fatalError("out of memory allocating \(count) aligned bytes")
        }
        HugePages.advise(UnsafeMutableRawBufferPointer(start: p, count: count))
        return p
    }
}
