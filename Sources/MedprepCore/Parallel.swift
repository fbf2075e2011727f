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

/// Wraps non-Sendable values (unsafe buffers, closures) that parallel workers use on disjoint
/// parts. The caller guarantees the disjointness.
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// First error raised by any worker.
public final class ErrorBox: @unchecked Sendable {
    private let lock = NSLockLite()
    private var stored: Error?
    public init() {}
    public func set(_ e: Error) { lock.locked { if stored == nil { stored = e } } }
    public var error: Error? { lock.locked { stored } }
}

/// A pthread mutex (Foundation-free).
public final class NSLockLite: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    public func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// Work started on a thread of its own and collected later with `wait()` (a one-shot future).
/// Convert hashes and writes a shard this way while the next one fills, and hashes a shard while
/// its bytes go to disk. A dedicated thread, not a dispatch queue, so it starts at once even when
/// other work occupies every pool thread.
public final class BackgroundWork<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, Error>?
    private let work: @Sendable () throws -> T

    public init(_ work: @escaping @Sendable () throws -> T) {
        self.work = work
        if !startDetachedThread({ [self] in runOnce() }) { runOnce() }
    }

    private func runOnce() {
        result = Result { try work() }
        done.signal()
    }

    /// Blocks until the work has finished; returns its value or rethrows its error.
    public func wait() throws -> T {
        done.wait()
        done.signal()  // later waits return at once
        return try result!.get()
    }
}

/// The closure a detached thread runs (a class, so one pointer reaches the thread).
private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Runs `work` on a thread of its own with a stack of `stackBytes` and waits for it: for
/// recursive code (a YAML parser) on input nested deeper than the 8 MiB main stack allows.
/// Throws when no such thread can be made.
public func withStack<T: Sendable>(bytes stackBytes: Int, _ work: @escaping @Sendable () throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = UnsafeSendable(UnsafeMutablePointer<Result<T, Error>?>.allocate(capacity: 1))
    result.value.initialize(to: nil)
    defer { result.value.deinitialize(count: 1); result.value.deallocate() }
    guard startDetachedThread(stackBytes: stackBytes, { result.value.pointee = Result { try work() }; done.signal() }) else {
        throw MedprepError(.ioFailure, "cannot start a thread with a \(stackBytes >> 20) MiB stack.")
    }
    done.wait()
    return try result.value.pointee!.get()
}

/// Runs `body` on a new detached thread (with `stackBytes` of stack, else the default); false
/// when no thread could be made.
func startDetachedThread(stackBytes: Int? = nil, _ body: @escaping @Sendable () -> Void) -> Bool {
    #if canImport(Glibc)
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    if let stackBytes, pthread_attr_setstacksize(&attr, stackBytes) != 0 {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        return false
    }
    let rc = pthread_create(&thread, &attr, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        return false
    }
    pthread_detach(thread)
    return true
    #else
    return false
    #endif
}
