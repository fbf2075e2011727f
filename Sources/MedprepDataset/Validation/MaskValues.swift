import MedprepCore

/// Class indices of a decoded mask before any mapping can fail: every voxel gets a code.
/// Codes below `MaskCodes.undeclaredBase` are classes (declared, or inferred from the values);
/// codes from it up are undeclared values, one code per distinct value (the last code collects
/// the overflow). Built from the raw stored values, so nothing throws on an unexpected value.
struct MaskCodes {
    static let undeclaredBase: UInt16 = 32768
    static let overflow: UInt16 = 65535

    /// A stored value: a number (after scl_slope/scl_inter) or an RGB colour.
    enum Raw: Hashable, Sendable {
        case number(Double)
        case colour(Int, Int, Int)
        case nan

        var text: String {
            switch self {
            case .number(let d): return formatShort(d)
            case .colour(let r, let g, let b): return "[\(r), \(g), \(b)]"
            case .nan: return "NaN"
            }
        }
        var json: JSON {
            switch self {
            case .number(let d): return d.isFinite ? .number(d) : .string("\(d)")
            case .colour(let r, let g, let b): return .ints([r, g, b])
            case .nan: return .string("NaN")
            }
        }
        var number: Double? { if case .number(let d) = self { return d }; return nil }
        var isInteger: Bool { if case .number(let d) = self { return d.isFinite && d == d.rounded() }; return false }
    }

    var codes: [UInt16]
    /// Raw value of each class code (index = code).
    var classValues: [Raw]
    /// Raw value of each undeclared code (index = code - undeclaredBase); overflow not listed.
    var undeclaredValues: [Raw]
    /// Voxels per class code.
    var classCounts: [Int]
    /// Voxels per undeclared code; the last entry counts the overflow code.
    var undeclaredCounts: [Int]

    var undeclaredTotal: Int { undeclaredCounts.reduce(0, +) }
}

/// How a mask's values are turned into codes.
struct MaskDecoder {
    /// Declared classes (value or colour per class); nil = infer classes from integer values.
    let labels: LabelSpec?

    /// Declared grey value of each class.
    var declaredValues: [Int] { (labels?.classes ?? []).enumerated().map { $0.element.value ?? $0.offset } }

    /// Problems that stop decoding (channel layout does not fit the declaration).
    enum Failure: Error { case channels(String) }

    func decode(_ mask: MedicalImage) throws -> MaskCodes {
        if let labels, labels.usesColours { return try decodeColours(mask, labels: labels) }
        guard mask.channels == 1 else {
            let identical = channelsIdentical(mask)
            throw Failure.channels("mask has \(mask.channels) channels\(identical ? " (all identical: a grey mask saved as colour)" : "") but the classes are declared by value, not colour.")
        }
        return decodeGrey(mask)
    }

    func channelsIdentical(_ mask: MedicalImage) -> Bool {
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
    final class Table {
        var classIndex: [Raw: UInt16] = [:]
        var classValues: [MaskCodes.Raw] = []
        var undeclared: [MaskCodes.Raw: UInt16] = [:]
        var undeclaredValues: [MaskCodes.Raw] = []
        let infer: Bool
        typealias Raw = MaskCodes.Raw

        init(declared: [Raw]?) {
            infer = declared == nil
            if let declared {
                for (i, v) in declared.enumerated() { classIndex[v] = UInt16(i); classValues.append(v) }
            } else {
                classIndex[.number(0)] = 0
                classValues.append(.number(0))
            }
        }

        func code(_ raw: Raw) -> UInt16 {
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

        func finish(codes: [UInt16]) -> MaskCodes {
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

    func decodeGrey(_ mask: MedicalImage) -> MaskCodes {
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

    func decodeColours(_ mask: MedicalImage, labels: LabelSpec) throws -> MaskCodes {
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

    /// Index of the declared class nearest to a raw value (JPEG snapping, as LabelMapping does).
    func nearestClass(_ raw: MaskCodes.Raw, classValues: [MaskCodes.Raw]) -> UInt16 {
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
