import MedprepCore

/// Class indices of a decoded mask before any mapping can fail: every voxel gets a code.
/// Codes below `MaskCodes.undeclaredBase` are classes (declared, or inferred from the values);
/// codes from it up are undeclared values, one code per distinct value (the last code collects
/// the overflow). Built from the raw stored values, so nothing throws on an unexpected value.
package struct MaskCodes {
    package static let undeclaredBase: UInt16 = 32768
    package static let overflow: UInt16 = 65535

    /// A stored value: a number (after scl_slope/scl_inter) or an RGB colour.
    package enum Raw: Hashable, Sendable {
        case number(Double)
        case colour(Int, Int, Int)
        case nan

        package var text: String {
            switch self {
            case .number(let d): return formatShort(d)
            case .colour(let r, let g, let b): return "[\(r), \(g), \(b)]"
            case .nan: return "NaN"
            }
        }
        package var json: JSON {
            switch self {
            case .number(let d): return d.isFinite ? .number(d) : .string("\(d)")
            case .colour(let r, let g, let b): return .ints([r, g, b])
            case .nan: return .string("NaN")
            }
        }
        package var number: Double? { if case .number(let d) = self { return d }; return nil }
        package var isInteger: Bool { if case .number(let d) = self { return d.isFinite && d == d.rounded() }; return false }
    }

    package var codes: [UInt16]
    /// Raw value of each class code (index = code).
    package var classValues: [Raw]
    /// Raw value of each undeclared code (index = code - undeclaredBase); overflow not listed.
    package var undeclaredValues: [Raw]
    /// Voxels per class code.
    package var classCounts: [Int]
    /// Voxels per undeclared code; the last entry counts the overflow code.
    package var undeclaredCounts: [Int]

    package var undeclaredTotal: Int { undeclaredCounts.reduce(0, +) }

    package init(codes: [UInt16], classValues: [Raw], undeclaredValues: [Raw], classCounts: [Int], undeclaredCounts: [Int]) {
        self.codes = codes; self.classValues = classValues; self.undeclaredValues = undeclaredValues
        self.classCounts = classCounts; self.undeclaredCounts = undeclaredCounts
    }
}

/// The one way medprep reads a mask's values, for validate and convert alike: every voxel gets a
/// code (`decode`, which never fails on a value); validate reports the undeclared codes, and
/// convert (`classIndices`) refuses them, or for lossy JPEG masks snaps them to the nearest
/// declared value or colour. With `labels` nil the classes are inferred (validate only).
public struct MaskDecoder: Sendable {
    /// Declared classes (value or colour per class); nil = infer classes from integer values.
    package let labels: LabelSpec?

    public init(labels: LabelSpec?) { self.labels = labels }

    /// What convert does with a voxel whose value is not declared.
    public enum Undeclared: Sendable {
        /// An error naming the values (lossless masks: such a value is an annotation error).
        case refuse
        /// The nearest declared value or colour (JPEG masks, whose edges blur), counted.
        case snapToNearest
    }

    /// Class indices 0..<K of a mask (x fastest, frame 0) and how many voxels were snapped.
    public func classIndices(_ mask: MedicalImage, path: String, undeclared: Undeclared) throws -> (classes: [UInt16], snapped: Int) {
        let mc: MaskCodes
        do { mc = try decode(mask) } catch Failure.channels(let message) {
            throw MedprepError(.mismatch, path: path, message)
        }
        guard mc.undeclaredTotal > 0 else { return (mc.codes, 0) }
        switch undeclared {
        case .refuse:
            let listed = mc.undeclaredValues.indices.sorted { mc.undeclaredCounts[$0] > mc.undeclaredCounts[$1] || (mc.undeclaredCounts[$0] == mc.undeclaredCounts[$1] && $0 < $1) }
            let shown = listed.prefix(5).map { "'\(mc.undeclaredValues[$0].text)' (\(mc.undeclaredCounts[$0]) voxels)" }
            let declared = mc.classValues.map(\.text).joined(separator: ", ")
            let kind = labels?.usesColours == true ? "colour" : "value"
            let what = shown.count == 1 && mc.undeclaredCounts.last == 0
                ? "mask \(kind) \(shown[0]) is not a declared class \(kind)"
                : "mask \(kind)s \(shown.joined(separator: ", "))\(listed.count > 5 || mc.undeclaredCounts.last! > 0 ? " and more" : "") are not declared class \(kind)s (\(mc.undeclaredTotal) voxels in all)"
            throw MedprepError(.mismatch, path: path, "\(what); declared: \(declared).")
        case .snapToNearest:
            var lut = [UInt16](repeating: 0, count: mc.undeclaredValues.count + 1)
            for (i, v) in mc.undeclaredValues.enumerated() { lut[i] = nearestClass(v, classValues: mc.classValues) }
            var classes = mc.codes
            for i in classes.indices where classes[i] >= MaskCodes.undeclaredBase {
                let u = Int(classes[i] - MaskCodes.undeclaredBase)
                classes[i] = u < mc.undeclaredValues.count ? lut[u] : 0
            }
            return (classes, mc.undeclaredTotal)
        }
    }

    /// Nested masks (Teeth-ISBI): a voxel's class is the number of masks non-zero there. Also
    /// returns, per mask k >= 1, the voxels it covers outside mask k-1 (up to `markCap`) and
    /// their count: counting then gives those voxels the wrong class.
    package static func nested(_ masks: [MedicalImage], markCap: Int) -> (codes: [UInt16], outside: [(count: Int, first: Int, marks: [Int32])]) {
        guard let first = masks.first else { return ([], []) }
        let n = first.voxelCount
        var codes = [UInt16](repeating: 0, count: n)
        var prevOn = [Bool](repeating: true, count: n)
        var outside: [(Int, Int, [Int32])] = []
        for m in masks {
            var on = [Bool](repeating: false, count: n)
            var count = 0, firstBad = -1
            var marks: [Int32] = []
            for i in 0..<min(n, m.voxelCount) {
                var any = false
                for c in 0..<m.channels where m.voxels.double(at: i * m.channels + c) != 0 { any = true; break }
                guard any else { continue }
                on[i] = true
                codes[i] += 1
                if !prevOn[i] {
                    count += 1
                    if firstBad < 0 { firstBad = i }
                    if marks.count < markCap { marks.append(Int32(i)) }
                }
            }
            outside.append((count, firstBad, marks))
            prevOn = on
        }
        return (codes, outside)
    }

    /// `nested` for convert: the class indices, after the masks are checked to share a size.
    public static func nestedClassIndices(_ masks: [MedicalImage], path: String) throws -> [UInt16] {
        guard let first = masks.first else { return [] }
        for m in masks where m.spatialDims != first.spatialDims {
            throw MedprepError(.mismatch, path: path, "nested masks differ in size: \(m.spatialDims) vs \(first.spatialDims).")
        }
        return nested(masks, markCap: 0).codes
    }
    /// Declared grey value of each class.
    package var declaredValues: [Int] { (labels?.classes ?? []).enumerated().map { $0.element.value ?? $0.offset } }

    /// Problems that stop decoding (channel layout does not fit the declaration).
    package enum Failure: Error { case channels(String) }

    package func decode(_ mask: MedicalImage) throws -> MaskCodes {
        if let labels, labels.usesColours { return try decodeColours(mask, labels: labels) }
        guard mask.channels == 1 else {
            let identical = channelsIdentical(mask)
            throw Failure.channels("mask has \(mask.channels) channels\(identical ? " (all identical: a grey mask saved as colour)" : "") but the classes are declared by value, not colour.")
        }
        return decodeGrey(mask)
    }

    package func channelsIdentical(_ mask: MedicalImage) -> Bool {
        guard mask.channels >= 3, case .uint8(let px) = mask.voxels else { return false }
        let c = mask.channels
        var i = 0
        while i + 2 < px.count {
            if px[i] != px[i + 1] || px[i] != px[i + 2] { return false }
            i += c
        }
        return true
    }

    /// Shared code-table logic.
    package final class Table {
        package var classIndex: [Raw: UInt16] = [:]
        package var classValues: [MaskCodes.Raw] = []
        package var undeclared: [MaskCodes.Raw: UInt16] = [:]
        package var undeclaredValues: [MaskCodes.Raw] = []
        package let infer: Bool
        package typealias Raw = MaskCodes.Raw

        package init(declared: [Raw]?) {
            infer = declared == nil
            if let declared {
                for (i, v) in declared.enumerated() { classIndex[v] = UInt16(i); classValues.append(v) }
            } else {
                classIndex[.number(0)] = 0
                classValues.append(.number(0))
            }
        }

        package func code(_ raw: Raw) -> UInt16 {
            if let c = classIndex[raw] { return c }
            if infer, raw.isInteger, classValues.count < Int(MaskCodes.undeclaredBase) {
                let c = UInt16(classValues.count)
                classIndex[raw] = c
                classValues.append(raw)
                return c
            }
            if let c = undeclared[raw] { return c }
            guard undeclaredValues.count < Int(MaskCodes.overflow - MaskCodes.undeclaredBase) else { return MaskCodes.overflow }
            let c = MaskCodes.undeclaredBase + UInt16(undeclaredValues.count)
            undeclared[raw] = c
            undeclaredValues.append(raw)
            return c
        }

        package func finish(codes: [UInt16]) -> MaskCodes {
            var classCounts = [Int](repeating: 0, count: classValues.count)
            var undeclaredCounts = [Int](repeating: 0, count: undeclaredValues.count + 1)
            codes.withUnsafeBufferPointer { buf in
                // Dense histogram over all 65536 codes, then split.
                let hist = countOccurrences(buf, bins: 65536)
                for i in classCounts.indices { classCounts[i] = hist[i] }
                for i in 0..<undeclaredValues.count { undeclaredCounts[i] = hist[Int(MaskCodes.undeclaredBase) + i] }
                undeclaredCounts[undeclaredValues.count] = hist[Int(MaskCodes.overflow)]
            }
            return MaskCodes(codes: codes, classValues: classValues, undeclaredValues: undeclaredValues,
                             classCounts: classCounts, undeclaredCounts: undeclaredCounts)
        }
    }

    package func decodeGrey(_ mask: MedicalImage) -> MaskCodes {
        let table = Table(declared: labels.map { _ in declaredValues.map { MaskCodes.Raw.number(Double($0)) } })
        let n = mask.voxelCount  // frame 0 only when a mask has several frames (reported as a shape error)
        let scaling = mask.scaling
        func raw(_ d: Double) -> MaskCodes.Raw {
            let v = scaling.map { d * $0.slope + $0.intercept } ?? d
            if v.isNaN { return .nan }
            return .number(v == 0 ? 0 : v)  // -0.0 and 0.0 are one value
        }
        var codes = [UInt16](repeating: 0, count: n)
        codes.withUnsafeMutableBufferPointer { out in mask.voxels.mapDistinct(into: out) { table.code(raw($0)) } }
        return table.finish(codes: codes)
    }

    package func decodeColours(_ mask: MedicalImage, labels: LabelSpec) throws -> MaskCodes {
        guard case .uint8(let px) = mask.voxels else {
            throw Failure.channels("colour-coded masks must be 8-bit images, but this mask is \(mask.voxels.type.rawValue).")
        }
        let table = Table(declared: labels.classes.map { .colour($0.colour![0], $0.colour![1], $0.colour![2]) })
        let n = mask.voxelCount
        var codes = [UInt16](repeating: 0, count: n)
        if let palette = mask.palette, mask.channels == 1 {
            var lut = [UInt16](repeating: 0, count: 256)
            for i in 0..<256 {
                let p = i * 3
                lut[i] = p + 2 < palette.count ? table.code(.colour(Int(palette[p]), Int(palette[p + 1]), Int(palette[p + 2])))
                    : table.code(.colour(-1, -1, -1))
            }
            for i in 0..<n { codes[i] = lut[Int(px[i])] }
        } else if mask.channels >= 3 {
            let c = mask.channels
            var lastKey = -1, lastCode: UInt16 = 0
            for i in 0..<n {
                let key = Int(px[i * c]) << 16 | Int(px[i * c + 1]) << 8 | Int(px[i * c + 2])
                if key == lastKey { codes[i] = lastCode; continue }
                let code = table.code(.colour(key >> 16, (key >> 8) & 255, key & 255))
                codes[i] = code
                lastKey = key; lastCode = code
            }
        } else {
            throw Failure.channels("mask has \(mask.channels) channel(s) and no palette, but the classes are declared by RGB colour.")
        }
        return table.finish(codes: codes)
    }

    /// Index of the declared class nearest to a raw value (JPEG snapping; the first on a tie).
    package func nearestClass(_ raw: MaskCodes.Raw, classValues: [MaskCodes.Raw]) -> UInt16 {
        var best = 0, bestD = Double.infinity
        for (k, v) in classValues.enumerated() {
            let d: Double
            switch (raw, v) {
            case (.number(let a), .number(let b)): d = abs(a - b)
            case (.colour(let r, let g, let b), .colour(let r2, let g2, let b2)):
                d = Double((r - r2) * (r - r2) + (g - g2) * (g - g2) + (b - b2) * (b - b2))
            default: d = .infinity
            }
            if d < bestD { bestD = d; best = k }
        }
        return UInt16(best)
    }
}
