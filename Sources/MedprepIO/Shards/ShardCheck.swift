import MedprepCore

/// Checks that a (valid) safetensors file is a medprep shard as docs/shard-format.md describes:
/// metadata, tensor names, dtypes and shapes, and the per-sample vectors' values.
public enum ShardCheck {
    /// What a shard holds.
    public struct Summary: Sendable, Equatable {
        public var shardIndex: Int
        public var sampleCount: Int
        public var medprepVersion: String
        public var layout: ShardLayout
    }

    public static func validate(_ file: SafetensorsFile) throws -> Summary {
        let path = file.path
        func bad(_ message: String) -> MedprepError { MedprepError(.mismatch, path: path, message) }
        guard let meta = file.metadata else { throw bad("not a medprep shard: no __metadata__.") }
        guard meta["format"] == ShardLayout.format else {
            throw bad("not a medprep shard: __metadata__ format is '\(meta["format"] ?? "")', expected '\(ShardLayout.format)'.")
        }
        guard meta["format_version"] == ShardLayout.formatVersion else {
            throw MedprepError(.unsupported, path: path,
                               "shard format_version '\(meta["format_version"] ?? "")' is not supported (expected '\(ShardLayout.formatVersion)').")
        }
        guard let nText = meta["sample_count"], let n = Int(nText), n >= 1 else {
            throw bad("__metadata__ sample_count '\(meta["sample_count"] ?? "")' is not a positive integer.")
        }
        guard let kText = meta["shard_index"], let shardIndex = Int(kText), shardIndex >= 0 else {
            throw bad("__metadata__ shard_index '\(meta["shard_index"] ?? "")' is not a non-negative integer.")
        }
        guard let version = meta["medprep_version"] else { throw bad("__metadata__ has no medprep_version.") }

        func tensor(_ name: String, _ dtypes: [SafetensorsDType], rank: Int) throws -> SafetensorsTensorInfo {
            guard let t = file.header.info(name) else { throw bad("shard has no tensor '\(name)'.") }
            guard dtypes.contains(t.dtype) else {
                throw bad("tensor '\(name)' is \(t.dtype.rawValue), expected \(dtypes.map(\.rawValue).joined(separator: " or ")).")
            }
            guard t.shape.count == rank, t.shape.first == n else {
                throw bad("tensor '\(name)' has shape \(t.shape), expected \(rank) dimensions starting with N = \(n).")
            }
            return t
        }
        let image = try tensor("image", [.F32, .F16], rank: 4)
        let (c, h, w) = (image.shape[1], image.shape[2], image.shape[3])
        let presenceInfo = try tensor("class_presence", [.U8], rank: 2)
        let k = presenceInfo.shape[1]
        let label = try tensor("label", [.U8, .U16], rank: 3)
        guard label.shape == [n, h, w] else { throw bad("tensor 'label' has shape \(label.shape), expected [\(n), \(h), \(w)].") }
        guard label.dtype == .U16 || k <= 256 else {
            throw bad("tensor 'label' is U8 but K = \(k) classes need U16.")
        }
        for (name, dtype) in [("case_index", SafetensorsDType.I32), ("slice_index", .I32), ("slice_count", .I32),
                              ("position", .F64), ("slice_coord_mm", .F64), ("pcl_partition", .U8)] {
            _ = try tensor(name, [dtype], rank: 1)
        }

        // Maps: sdf / rrw / sdf_s{s} / rrw_s{s}; nothing else is allowed.
        let fixed: Set<String> = ["image", "label", "case_index", "slice_index", "slice_count", "position",
                                  "slice_coord_mm", "pcl_partition", "class_presence"]
        var scales: [String: [Int]] = ["sdf": [], "rrw": []]
        // Dense maps are [N, K, h, w]; compact ones [P, h, w], P = the ones in class_presence.
        var mapDTypes = Set<SafetensorsDType>(), compact = Set<Bool>()
        let presentPlanes = try file.values("class_presence", as: UInt8.self).reduce(0) { $0 + Int($1) }
        for t in file.tensors where !fixed.contains(t.name) {
            var kind = t.name, scale = 1
            if let r = t.name.firstRange(of: "_s") {
                kind = String(t.name[..<r.lowerBound])
                guard let s = Int(t.name[r.upperBound...]), s > 1, String(s) == t.name[r.upperBound...] else {
                    throw bad("unexpected tensor '\(t.name)' in a medprep shard.")
                }
                scale = s
            }
            guard scales[kind] != nil else { throw bad("unexpected tensor '\(t.name)' in a medprep shard.") }
            guard let info = file.header.info(t.name), [.F32, .F16].contains(info.dtype) else {
                throw bad("tensor '\(t.name)' is \(file.header.info(t.name)?.dtype.rawValue ?? "?"), expected F32 or F16.")
            }
            let coarse = MapPlane.size(height: h, width: w, scale: scale)
            let plane = [coarse.height, coarse.width]
            let want = info.shape.count == 3 ? [presentPlanes] + plane : [n, k] + plane
            guard info.shape == want else {
                throw bad("tensor '\(t.name)' has shape \(info.shape), expected \(want)\(info.shape.count == 3 ? " (compact maps: one plane per present class)" : "").")
            }
            mapDTypes.insert(info.dtype)
            compact.insert(info.shape.count == 3)
            scales[kind]!.append(scale)
        }
        let sdfScales = scales["sdf"]!.sorted(), rrwScales = scales["rrw"]!.sorted()
        if !sdfScales.isEmpty && !rrwScales.isEmpty && sdfScales != rrwScales {
            throw bad("sdf scales \(sdfScales) differ from rrw scales \(rrwScales).")
        }
        guard mapDTypes.count <= 1, compact.count <= 1 else {
            throw bad("map tensors mix dtypes \(mapDTypes.map(\.rawValue).sorted()) or dense and compact shapes.")
        }
        let layout: ShardLayout
        do {
            layout = try ShardLayout(channels: c, height: h, width: w, classCount: k,
                                     imageDType: image.dtype == .F16 ? .float16 : .float32,
                                     labelDType: label.dtype == .U16 ? .uint16 : .uint8,
                                     sdf: !sdfScales.isEmpty, rrw: !rrwScales.isEmpty,
                                     mapScales: sdfScales.isEmpty ? rrwScales : sdfScales,
                                     mapDType: mapDTypes.first ?? .F32, compactMaps: compact.first ?? false)
        } catch let e as MedprepError {
            throw bad(e.message)
        }

        // Per-sample values.
        let sliceIndex = try file.values("slice_index", as: Int32.self)
        let sliceCount = try file.values("slice_count", as: Int32.self)
        let caseIndex = try file.values("case_index", as: Int32.self)
        let position = try file.values("position", as: Double.self)
        let pcl = try file.values("pcl_partition", as: UInt8.self)
        let presence = try file.values("class_presence", as: UInt8.self)
        for i in 0..<n {
            let what = "sample \(i) (case \(caseIndex[i]), slice \(sliceIndex[i]))"
            guard caseIndex[i] >= 0 else { throw bad("\(what): case_index is negative.") }
            guard sliceCount[i] >= 1, sliceIndex[i] >= 0, sliceIndex[i] < sliceCount[i] else {
                throw bad("\(what): slice_index \(sliceIndex[i]) is not in 0..<slice_count \(sliceCount[i]).")
            }
            let p = ShardLayout.position(sliceIndex: Int(sliceIndex[i]), sliceCount: Int(sliceCount[i]))
            guard position[i] == p else { throw bad("\(what): position \(position[i]) is not (i+1)/N = \(p).") }
            guard (1...ShardLayout.pclPartitions).contains(Int(pcl[i])) else {
                throw bad("\(what): pcl_partition \(pcl[i]) is not in 1...\(ShardLayout.pclPartitions).")
            }
            guard presence[(i * k)..<((i + 1) * k)].allSatisfy({ $0 <= 1 }) else {
                throw bad("\(what): class_presence holds values other than 0 and 1.")
            }
        }
        let labels: [Int] = label.dtype == .U8 ? try file.values("label", as: UInt8.self).map(Int.init)
                                               : try file.values("label", as: UInt16.self).map(Int.init)
        if let i = labels.firstIndex(where: { $0 >= k }) {
            throw bad("sample \(i / (h * w)): label value \(labels[i]) is not below the class count \(k).")
        }
        return Summary(shardIndex: shardIndex, sampleCount: n, medprepVersion: version, layout: layout)
    }
}
