#if canImport(Glibc)
import Glibc
#endif
import CMedprep

/// Large fresh buffers are first touched page by page; with 4 KiB pages a 160 MiB volume
/// costs ~40k page faults, which dominated read time. Like numpy, ask for transparent huge
/// pages on big allocations before touching them (a no-op where THP is off).
public enum HugePages {
    public static let threshold = 4 << 20

    public static func advise(_ buffer: UnsafeMutableRawBufferPointer) {
        #if canImport(Glibc)
        guard buffer.count >= threshold, let base = buffer.baseAddress else { return }
        let page = 4096
        let start = (Int(bitPattern: base) + page - 1) & ~(page - 1)
        let end = (Int(bitPattern: base) + buffer.count) & ~(page - 1)
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_HUGEPAGE)
        #endif
    }

    /// A new array of `count` elements, filled by `body`, backed by huge pages when large.
    @inlinable
    public static func array<T>(count: Int, _ body: (UnsafeMutableBufferPointer<T>) throws -> Void) rethrows -> [T] {
        try [T](unsafeUninitializedCapacity: count) { buf, n in
            advise(UnsafeMutableRawBufferPointer(buf))
            try body(buf)
            n = count
        }
    }
}

/// Memory the process frees is kept for reuse instead of going back to the kernel: medprep frees
/// and reallocates the same large buffers for every slice, case and shard, and fresh pages cost a
/// fault and a zeroed page each (on a VM the first touch of host memory is slower still: about
/// 0.4 GB/s measured here). glibc by default maps blocks above a threshold separately, unmaps
/// them on free and trims the heap's free top; medprep turns all three off (mallopt, through the
/// C shim). Peak RSS is unchanged; RSS just does not shrink before exit.
public enum AllocatorTuning {
    @discardableResult
    public static func keepFreedMemory() -> Bool { mp_keep_freed_memory() == 1 }
}

