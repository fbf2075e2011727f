import MedprepCore

/// Turns a mask as stored (integer labels, grey levels, RGB colours, palette indices, or a set
/// of nested masks) into class indices 0..<K following the manifest's class list.
public struct LabelMapping: Sendable {
    public let labels: LabelSpec

    public init(_ labels: LabelSpec) { self.labels = labels }

    /// Result of mapping one mask: class indices (x fastest) and how many pixels needed snapping.
    public struct Mapped: Sendable {
        public var classes: [UInt16]
        /// Pixels whose stored value was not exactly a declared value/colour (JPEG masks only;
        /// they were snapped to the nearest one).
        public var ambiguousPixels: Int
    }

    /// Declared source value of each class (default: its index).
    var values: [Int] { labels.classes.enumerated().map { $0.element.value ?? $0.offset } }

    /// Maps a decoded mask. `lossy` (JPEG) snaps to the nearest declared value or colour and
    /// counts such pixels; otherwise an undeclared value is an error naming it.
    public func map(_ mask: MedicalImage, path: String, lossy: Bool) throws -> Mapped {
        if labels.usesColours { return try mapColours(mask, path: path, lossy: lossy) }
        guard mask.channels == 1 else {
            throw MedprepError(.mismatch, path: path, "mask has \(mask.channels) channels but the manifest declares integer values, not colours.")
        }
        let table = values
        // Each distinct stored value is looked up once; `unmatched` marks an undeclared one (the
        // manifest allows at most 65535 classes, so no class index is UInt16.max).
        let unmatched = UInt16.max
        let index = Dictionary(table.enumerated().map { ($1, UInt16($0)) }, uniquingKeysWith: { first, _ in first })
        func declaredClass(_ stored: Double) -> UInt16 {
            let raw = mask.scaled(stored)
            guard raw == raw.rounded(), abs(raw) < 1e15, let k = index[Int(raw)] else { return unmatched }
            return k
        }
        var out = [UInt16](repeating: 0, count: mask.voxelCount)
        out.withUnsafeMutableBufferPointer { mask.voxels.mapDistinct(into: $0, declaredClass) }
        let undeclared = out.withUnsafeBufferPointer { $0.reduce(0) { $0 + ($1 == unmatched ? 1 : 0) } }
        guard undeclared > 0 else { return Mapped(classes: out, ambiguousPixels: 0) }
        guard lossy else {
            let first = mask.scaled(mask.voxels.double(at: out.firstIndex(of: unmatched)!))
            throw MedprepError(.mismatch, path: path,
                               "mask value '\(formatShort(first))' (\(undeclared) voxels) is not a declared class value; declared: \(table.map(String.init).joined(separator: ", ")).")
        }
        // JPEG: snap each undeclared value to the nearest declared one (the first on a tie).
        for i in out.indices where out[i] == unmatched {
            let raw = mask.scaled(mask.voxels.double(at: i))
            var best = 0
            for (k, v) in table.enumerated() where abs(Double(v) - raw) < abs(Double(table[best]) - raw) { best = k }
            out[i] = UInt16(best)
        }
        return Mapped(classes: out, ambiguousPixels: undeclared)
    }

    func mapColours(_ mask: MedicalImage, path: String, lossy: Bool) throws -> Mapped {
        let colours = labels.classes.map { $0.colour! }
        var rgbAt: (Int) -> (Int, Int, Int)
        guard case .uint8(let px) = mask.voxels else {
            throw MedprepError(.mismatch, path: path, "colour-coded masks must be 8-bit images, got \(mask.voxels.type.rawValue).")
        }
        if let palette = mask.palette, mask.channels == 1 {
            rgbAt = { i in let p = Int(px[i]) * 3; return p + 2 < palette.count ? (Int(palette[p]), Int(palette[p + 1]), Int(palette[p + 2])) : (-1, -1, -1) }
        } else if mask.channels >= 3 {
            let c = mask.channels
            rgbAt = { i in (Int(px[i * c]), Int(px[i * c + 1]), Int(px[i * c + 2])) }
        } else {
            throw MedprepError(.mismatch, path: path, "mask has \(mask.channels) channel(s) but the manifest declares RGB colours.")
        }
        var out = [UInt16](repeating: 0, count: mask.voxelCount)
        var ambiguous = 0, badCount = 0
        var firstBad: (Int, Int, Int)? = nil
        for i in 0..<mask.voxelCount {
            let (r, g, b) = rgbAt(i)
            var best = 0, bestD = Int.max
            for (k, col) in colours.enumerated() {
                let d = (r - col[0]) * (r - col[0]) + (g - col[1]) * (g - col[1]) + (b - col[2]) * (b - col[2])
                if d < bestD { bestD = d; best = k }
            }
            if bestD != 0 {
                if lossy { ambiguous += 1 } else { badCount += 1; if firstBad == nil { firstBad = (r, g, b) } }
            }
            out[i] = UInt16(best)
        }
        if let bad = firstBad {
            throw MedprepError(.mismatch, path: path,
                               "mask colour '[\(bad.0), \(bad.1), \(bad.2)]' (\(badCount) pixels) is not a declared class colour.")
        }
        return Mapped(classes: out, ambiguousPixels: ambiguous)
    }

    /// Nested masks (Teeth-ISBI): a pixel's class is the number of masks with a non-zero value there.
    public static func nested(_ masks: [MedicalImage], path: String) throws -> [UInt16] {
        guard let first = masks.first else { return [] }
        var out = [UInt16](repeating: 0, count: first.voxelCount)
        for m in masks {
            guard m.dims == first.dims else {
                throw MedprepError(.mismatch, path: path, "nested masks differ in size: \(m.dims) vs \(first.dims).")
            }
            for i in 0..<m.voxelCount {
                var on = false
                for c in 0..<m.channels where m.voxels.double(at: i * m.channels + c) != 0 { on = true }
                if on { out[i] += 1 }
            }
        }
        return out
    }
}

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
