import Dispatch

/// Runs `body(i)` for i in 0..<count on up to `threads` threads. Work is split into
/// fixed contiguous blocks by index, so results written per index never depend on scheduling.
public func parallelFor(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
    let t = max(1, min(threads, count))
    if t == 1 {
        for i in 0..<count { body(i) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: t) { w in
        let lo = count * w / t, hi = count * (w + 1) / t
        for i in lo..<hi { body(i) }
    }
}

/// Cores available to this process.
public var defaultThreadCount: Int { max(1, ProcessInfoLite.activeProcessorCount) }

enum ProcessInfoLite {
    static var activeProcessorCount: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 1
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
