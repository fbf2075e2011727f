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
        var parts: [(part: ShardIndex.Part, index: ShardIndex, name: String)] = []
        for name in names {
            let path = "\(partsDir)/\(name)/index.json"
            guard FileIO.exists(path) else {
                throw MedprepError(.fileNotFound, path: path, "part '\(name)' has no index.json (still running, or failed: rerun it with --resume).")
            }
            let index = try IndexFile.read(path: path)
            guard let part = index.part else {
                throw MedprepError(.invalidArgument, path: path, "is not a partial index (no 'part' entry).")
            }
            parts.append((part, index, name))
        }
        guard let n = parts.first?.part.count else {
            throw MedprepError(.fileNotFound, path: partsDir, "no parts found (run 'medprep convert --part i/n' first).")
        }
        parts.sort { $0.part.index < $1.part.index }
        let found = parts.map(\.part.index)
        guard parts.allSatisfy({ $0.part.count == n }), found == Array(0..<n) else {
            throw MedprepError(.mismatch, path: partsDir, "expected parts 0..<\(n), found \(found) of counts \(Set(parts.map(\.part.count)).sorted()).")
        }
        let first = parts[0].index
        for p in parts {
            let differing: [(String, Bool)] = [
                ("manifest_sha256", p.index.manifestSHA256 == first.manifestSHA256), ("classes", p.index.classes == first.classes),
                ("parameters", p.index.parameters == first.parameters), ("maps", p.index.maps == first.maps),
                ("folds", p.index.folds == first.folds), ("medprep_version", p.index.medprepVersion == first.medprepVersion),
            ]
            if let key = differing.first(where: { !$0.1 })?.0 {
                throw MedprepError(.mismatch, path: "\(partsDir)/\(p.name)/index.json", "'\(key)' differs from part 0: parts come from different manifests or medprep versions.")
            }
        }
        let indexPath = output + "/index.json"
        if FileIO.exists(indexPath) && !force {
            throw MedprepError(.ioFailure, path: indexPath, "already exists; use --force to replace it.")
        }
        // Part 0's index with every part's shards (listed where they are), cases and skipped
        // cases, the samples renumbered by the parts' offsets.
        var merged = first
        merged.part = nil
        merged.shards = []; merged.cases = []; merged.skippedCases = []; merged.normalisation.cases = []
        var offset = 0
        for (_, index, name) in parts {
            merged.shards += index.shards.map { s in
                var s = s
                s.file = "parts/\(name)/" + s.file
                s.firstSample += offset
                return s
            }
            merged.cases += index.cases.map { c in
                var c = c
                c.sliceRange.firstSample += offset
                return c
            }
            merged.skippedCases += index.skippedCases
            merged.normalisation.cases += index.normalisation.cases
            offset += index.sampleCount
        }
        merged.sampleCount = offset
        try FileIO.writeAtomically(Array(try merged.serialized().utf8), to: indexPath)
        return Result(parts: n, cases: merged.cases.count, samples: offset, shards: merged.shards.count)
    }
}
