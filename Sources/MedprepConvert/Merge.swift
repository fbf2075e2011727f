import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// Joins the partial indexes written by `convert --part i/n` (OUT/parts/i-of-n/index.json) into
/// one OUT/index.json. Parts hold contiguous blocks of cases in case order, so concatenating them
/// in part order gives the same case and sample numbering as a single run (shard boundaries differ).
public enum Merge {
    public struct Result: Sendable { public var parts: Int; public var cases: Int; public var samples: Int; public var shards: Int }

    public static func run(output: String, force: Bool) throws -> Result {
        let partsDir = output + "/parts"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: partsDir)) ?? []).sorted()
        var parts: [(Int, Int, JSON, String)] = []
        for name in names {
            let path = "\(partsDir)/\(name)/index.json"
            guard FileIO.exists(path) else {
                throw MedprepError(.fileNotFound, path: path, "part '\(name)' has no index.json (still running, or failed: rerun it with --resume).")
            }
            let j = try JSON.parse(String(decoding: try FileIO.readAll(path), as: UTF8.self))
            guard let i = j["part"]?["index"]?.intValue, let n = j["part"]?["count"]?.intValue else {
                throw MedprepError(.invalidArgument, path: path, "is not a partial index (no 'part' entry).")
            }
            parts.append((i, n, j, name))
        }
        guard let n = parts.first?.1 else {
            throw MedprepError(.fileNotFound, path: partsDir, "no parts found (run 'medprep convert --part i/n' first).")
        }
        parts.sort { $0.0 < $1.0 }
        let found = parts.map(\.0)
        guard parts.allSatisfy({ $0.1 == n }), found == Array(0..<n) else {
            throw MedprepError(.mismatch, path: partsDir, "expected parts 0..<\(n), found \(found) of counts \(Set(parts.map(\.1)).sorted()).")
        }
        let first = parts[0].2
        for key in ["manifest_sha256", "classes", "parameters", "maps", "folds", "medprep_version"] {
            for p in parts where p.2[key] != first[key] {
                throw MedprepError(.mismatch, path: "\(partsDir)/\(p.3)/index.json", "'\(key)' differs from part 0: parts come from different manifests or medprep versions.")
            }
        }
        let indexPath = output + "/index.json"
        if FileIO.exists(indexPath) && !force {
            throw MedprepError(.ioFailure, path: indexPath, "already exists; use --force to replace it.")
        }
        var shards: [JSON] = [], cases: [JSON] = [], skipped: [JSON] = [], normCases: [JSON] = []
        var offset = 0
        for (_, _, j, name) in parts {
            for s in j["shards"]?.arrayValue ?? [] {
                shards.append(rewrite(s, ["file": .string("parts/\(name)/" + (s["file"]?.stringValue ?? "")),
                                          "first_sample": .int((s["first_sample"]?.intValue ?? 0) + offset)]))
            }
            for c in j["cases"]?.arrayValue ?? [] {
                let range = c["slice_range"] ?? .null
                cases.append(rewrite(c, ["slice_range": rewrite(range, ["first_sample": .int((range["first_sample"]?.intValue ?? 0) + offset)])]))
            }
            skipped += j["skipped_cases"]?.arrayValue ?? []
            normCases += j["normalisation"]?["cases"]?.arrayValue ?? []
            offset += j["sample_count"]?.intValue ?? 0
        }
        guard case .object(var top) = first else { throw MedprepError(.invalidArgument, path: partsDir, "part 0's index is not an object.") }
        top.removeAll { $0.0 == "part" }
        func set(_ k: String, _ v: JSON) { if let i = top.firstIndex(where: { $0.0 == k }) { top[i].1 = v } else { top.append((k, v)) } }
        set("shards", .array(shards))
        set("cases", .array(cases))
        set("skipped_cases", .array(skipped))
        set("sample_count", .int(offset))
        if let norm = first["normalisation"] { set("normalisation", rewrite(norm, ["cases": .array(normCases)])) }
        try FileIO.writeAtomically(Array((JSON.object(top).serialized(indent: 2) + "\n").utf8), to: indexPath)
        return Result(parts: n, cases: cases.count, samples: offset, shards: shards.count)
    }

    /// An object with some members replaced (order kept).
    package static func rewrite(_ j: JSON, _ changes: [String: JSON]) -> JSON {
        guard case .object(let o) = j else { return j }
        return .object(o.map { (k, v) in (k, changes[k] ?? v) })
    }
}
