import Foundation
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// Runs `work(i)` for i in 0..<count on `jobs` threads and hands results to `consume` strictly
/// in index order on the calling thread. Workers never run more than `jobs` items ahead of the
/// consumer, so memory stays near `jobs` x one item whatever the dataset size; output order
/// (and so every byte written) does not depend on `jobs` or scheduling.
public func orderedParallel<R>(count: Int, jobs: Int, work: @escaping @Sendable (Int) -> R,
                               consume: (Int, R) throws -> Void) throws {
    guard count > 0 else { return }
    let state = OrderedState<R>(count: count, window: max(1, jobs))
    let workers = max(1, min(jobs, count))
    let group = DispatchGroup()
    for _ in 0..<workers {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while let i = state.claim() {
                let r = work(i)
                state.deliver(i, r)
            }
        }
    }
    var failure: Error?
    for i in 0..<count {
        let r = state.take(i)
        do { try consume(i, r) } catch {
            failure = error
            state.cancel()
            break
        }
    }
    group.wait()
    if let failure { throw failure }
}

private final class OrderedState<R>: @unchecked Sendable {
    private let cond = NSCondition()
    private let count: Int
    private let window: Int
    private var next = 0       // next index to claim
    private var consumed = 0   // items handed to the consumer
    private var cancelled = false
    private var slots: [Int: R] = [:]

    package init(count: Int, window: Int) { self.count = count; self.window = window }

    /// Next index to work on, waiting while the window is full; nil when done or cancelled.
    package func claim() -> Int? {
        cond.lock(); defer { cond.unlock() }
        while !cancelled && next < count && next >= consumed + window { cond.wait() }
        guard !cancelled, next < count else { return nil }
        next += 1
        return next - 1
    }

    package func deliver(_ i: Int, _ r: R) {
        cond.lock(); slots[i] = r; cond.broadcast(); cond.unlock()
    }

    package func take(_ i: Int) -> R {
        cond.lock(); defer { cond.unlock() }
        while slots[i] == nil { cond.wait() }
        let r = slots.removeValue(forKey: i)!
        consumed = i + 1
        cond.broadcast()
        return r
    }

    package func cancel() { cond.lock(); cancelled = true; cond.broadcast(); cond.unlock() }
}
