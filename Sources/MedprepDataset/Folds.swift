import MedprepCore

/// Deterministic k-fold assignment: case ids sorted, shuffled by SplitMix64(seed), dealt round-robin.
/// A case is never split across folds (folds are per case, all its slices follow).
public enum Folds {
    public static func assign(ids: [String], k: Int, seed: UInt64) -> [String: Int] {
        var order = ids.sorted()
        var rng = SplitMix64(seed: seed)
        // Fisher-Yates with our own generator (Swift's shuffle algorithm is not specified).
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        var out: [String: Int] = [:]
        for (n, id) in order.enumerated() { out[id] = n % k }
        return out
    }
}

/// Per-slice metadata for CORAL / positional contrastive learning.
public struct SliceMeta: Sendable, Equatable {
    public var caseIndex: Int
    /// 0-based index in the canonical orientation along the slice axis.
    public var sliceIndex: Int
    public var sliceCount: Int
    /// World coordinate (mm) of the slice along the slice axis.
    public var coordinateMM: Double

    /// p = (i + 1) / N in float64.
    public var position: Double { Double(sliceIndex + 1) / Double(sliceCount) }

    /// PCL partition 1...4: which quarter of the volume the slice falls in, floor(4 i / N) + 1.
    public var partition: Int { min(4, (4 * sliceIndex) / sliceCount + 1) }
}
