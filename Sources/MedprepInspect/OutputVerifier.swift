import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// One thing wrong with an output: the file it is in and a sentence naming the value.
public struct VerifyProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var message: String
    public init(file: String, message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
    public var json: JSON { .object([("file", .string(file)), ("message", .string(message))]) }
}

/// What `medprep verify` looked at.
public struct VerifyCounts: Sendable, Equatable {
    /// index.json files read (1, or one per part).
    public var indexes = 0
    public var parts = 0
    /// Shard files listed, and the bytes read and hashed.
    public var shards = 0
    public var bytes = 0
    /// Tensors checked (over all shards).
    public var tensors = 0
    public var samples = 0
    public var cases = 0
    public var classes = 0

    public var json: JSON {
        .object([("indexes", .int(indexes)), ("parts", .int(parts)), ("shards", .int(shards)), ("bytes", .int(bytes)),
                 ("tensors", .int(tensors)), ("samples", .int(samples)), ("cases", .int(cases)), ("classes", .int(classes))])
    }
}

/// The result of `OutputVerifier.verify`: ok when there are no problems. Notes are facts worth
/// saying that do not make the output wrong (an unmerged set of parts, folds that are not the
/// seeded assignment).
public struct VerifyReport: Sendable {
    public var output: String
    public var problems: [VerifyProblem] = []
    public var notes: [String] = []
    public var checked = VerifyCounts()
    public var ok: Bool { problems.isEmpty }

    public init(output: String) { self.output = output }

    public var json: JSON {
        .object([("ok", .bool(ok)), ("output", .string(output)), ("problems", .array(problems.map(\.json))),
                 ("notes", .array(notes.map { .string($0) })), ("checked", checked.json)])
    }

    package mutating func add(_ file: String, _ message: String) { problems.append(VerifyProblem(file: file, message: message)) }
}

/// `medprep verify OUT`: checks a convert output end to end without trusting any of it.
///
/// 1. index.json: valid JSON with the structure of Schemas/shard-index.schema.json (`IndexSchema`),
///    `classes[i].index == i`, `cases[i].case_index` strictly increasing (gaps where cases were skipped or belong to other parts).
/// 2. Every shard: present, `bytes` and `sha256` as listed, a valid safetensors file
///    (`SafetensorsReader`), a valid medprep shard (`ShardCheck.validate`: names, dtypes,
///    shapes, per-sample values), and consistent with the index: `__metadata__` shard_index
///    = its position and sample_count as listed, K = classes, maps and scales as `maps`, dtypes
///    as `parameters.dtypes`, slice size as `parameters.geometry.size`, the same C×H×W in every
///    shard, the index's medprep_version; `pcl_partition` exactly ⌊4i/N⌋+1 and
///    `class_presence` exactly the classes in `label`.
/// 3. Across files: the shards tile 0 ..< sample_count in order; the cases' slice_ranges tile
///    it too; over each case's range the shards' case_index is the case's and slice_index runs
///    0 ..< count in order with slice_count = count (so every slice is there once, and position
///    = (i+1)/N exactly follows from ShardCheck); every sample belongs to the case whose range
///    holds it (a fold never splits a case); folds are in 0 ..< k; case ids are unique; no stray
///    shard, journal or temporary files in the folder.
/// 4. An OUT with `parts/*/index.json` and no index.json: each part as above, the parts i-of-n
///    complete and disjoint, plus a note to run `medprep merge`.
///
/// Never throws and never traps on damaged input: every failure becomes a problem.
public enum OutputVerifier {
    public struct Options: Sendable {
        /// Shards checked concurrently (each is held in memory while checked).
        public var jobs = min(4, defaultThreadCount)
        /// Called after each shard: (shards done, shards total, file). Called from worker threads.
        public var onShard: (@Sendable (Int, Int, String) -> Void)?
        /// Longest problem list; the rest is summarised in one line.
        public var maxProblems = 1000
        public init() {}
    }

    public static func verify(_ out: String, options: Options = .init()) -> VerifyReport {
        let loc = OutputLocation(out)
        var report = VerifyReport(output: loc.directory)
        let dir = loc.directory
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) || !isDir.boolValue {
            report.add(dir, FileIO.exists(dir) ? "is not a folder." : "no such folder.")
            return report
        }
        if FileIO.exists(loc.indexPath) {
            _ = verifyIndex(dir: dir, report: &report, options: options)
            if FileIO.exists(dir + "/parts"), (try? IndexFile.read(path: loc.indexPath))?.shards.contains(where: { $0.file.hasPrefix("parts/") }) != true {
                report.notes.append("\(dir)/parts holds part outputs too; only the merged index.json and its shards were checked.")
            }
        } else {
            let partDirs = allPartDirectories(dir)
            if partDirs.isEmpty {
                if FileIO.exists(dir + "/" + OutputFiles.journal) {
                    report.add(loc.indexPath, "not found, but a conversion journal is: a convert is running or was interrupted (finish it with 'medprep convert ... --resume').")
                } else {
                    report.add(loc.indexPath, "not found: \(dir) is not a medprep convert output (no index.json, no parts/*/index.json).")
                }
            } else {
                var infos: [PartInfo] = []
                for p in partDirs {
                    report.checked.parts += 1
                    guard FileIO.exists(p + "/index.json") else {
                        report.add(p + "/index.json", "not found: this part is still converting or was interrupted (finish it with 'medprep convert ... --part ... --resume').")
                        continue
                    }
                    if let info = verifyIndex(dir: p, report: &report, options: options) { infos.append(info) }
                }
                checkParts(infos, root: dir, report: &report)
                report.notes.append("\(dir) has \(partDirs.count) part\(partDirs.count == 1 ? "" : "s") and no index.json: run 'medprep merge \(dir)' to join them into one output.")
            }
        }
        if report.problems.count > options.maxProblems {
            let more = report.problems.count - options.maxProblems
            report.problems.removeSubrange(options.maxProblems...)
            report.add(dir, "\(more) more problems not listed.")
        }
        return report
    }

    /// Every folder under OUT/parts (with or without an index.json).
    package static func allPartDirectories(_ dir: String) -> [String] {
        let root = dir + "/parts"
        let withIndex = OutputLocation(dir).partDirectories
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let others = names.filter { n in
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + n, isDirectory: &d) && d.boolValue && !withIndex.contains(root + "/" + n)
        }.sorted().map { root + "/" + $0 }
        return withIndex + others
    }

    // MARK: - Parts

    package struct PartInfo {
        package var dir: String
        package var part: (index: Int, count: Int)?
        package var caseIndices: [Int]
        package var ids: [String]
    }

    package static func checkParts(_ infos: [PartInfo], root: String, report: inout VerifyReport) {
        let counts = Set(infos.compactMap { $0.part?.count })
        if counts.count > 1 {
            report.add(root + "/parts", "holds parts of different splits (of \(counts.sorted().map(String.init).joined(separator: ", "))), expected one 'i-of-n' set.")
            return
        }
        if let n = counts.first {
            let have = infos.compactMap { $0.part?.index }
            for i in 0..<max(0, min(n, 100_000)) where !have.contains(i) {
                report.add(root + "/parts/\(i)-of-\(n)", "is missing: part \(i) of \(n) has not been converted.")
            }
            for i in Set(have) where have.filter({ $0 == i }).count > 1 {
                report.add(root + "/parts", "holds part \(i) of \(n) more than once.")
            }
        }
        var seenIDs: [String: String] = [:]
        var seenIndex: [Int: String] = [:]
        for info in infos {
            for id in info.ids {
                if let other = seenIDs[id] { report.add(info.dir + "/index.json", "case '\(id)' is also in \(other)/index.json.") }
                else { seenIDs[id] = info.dir }
            }
            for ci in info.caseIndices {
                if let other = seenIndex[ci], other != info.dir { report.add(info.dir + "/index.json", "case_index \(ci) is also used in \(other)/index.json.") }
                else { seenIndex[ci] = info.dir }
            }
        }
    }

    // MARK: - One output folder (the merged output or one part)

    package struct Expect: Sendable {
        package var indexPath: String
        package var classCount: Int?
        package var sdf: Bool
        package var rrw: Bool
        package var scales: [Int]
        package var storage: MapsSpec.Storage
        package var mapDType: ShardLayout.ImageDType
        package var imageDType: String?
        package var labelDType: String?
        package var size: [Int]?
        package var medprepVersion: String
    }

    /// Facts one shard contributes to the cross-file checks.
    package struct ShardFacts: Sendable {
        package var problems: [VerifyProblem] = []
        package var hashedBytes = 0
        package var tensors = 0
        package var layout: ShardLayout?
        package var caseIndex: [Int32] = []
        package var sliceIndex: [Int32] = []
        package var sliceCount: [Int32] = []
        package var rows: Int { caseIndex.count }
    }

    package static func problem(_ error: Error, _ path: String) -> VerifyProblem {
        if let e = error as? MedprepError { return VerifyProblem(file: e.path ?? path, message: e.message) }
        return VerifyProblem(file: path, message: "\(error)")
    }

    package static func sat(_ a: Int, _ b: Int) -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b > 0 ? Int.max : Int.min) : r
    }

    /// Checks dir/index.json and everything it lists; returns what `checkParts` needs (nil
    /// when the index cannot be read).
    package static func verifyIndex(dir: String, report: inout VerifyReport, options: Options) -> PartInfo? {
        let indexPath = dir + "/index.json"
        let parsed: IndexFile.Parsed
        do {
            parsed = try IndexFile.parse(path: indexPath)
        } catch {
            report.problems.append(problem(error, indexPath))
            return nil
        }
        report.checked.indexes += 1
        for k in parsed.duplicateKeys { report.add(indexPath, "the key '\(k)' appears twice (readers keep one of the values silently).") }
        // The shards are checked against an index that has the schema's structure: every value
        // the checks below compare with is then there and of its type.
        let schemaProblems = IndexSchema.check(parsed.json)
        for m in schemaProblems { report.add(indexPath, m) }
        let index: ShardIndex
        do {
            guard schemaProblems.isEmpty else { throw MedprepError(.badHeader, path: indexPath, "") }
            index = try ShardIndex(json: parsed.json)
        } catch {
            if schemaProblems.isEmpty { report.add(indexPath, "does not decode as an index: \(error).") }
            report.notes.append("\(indexPath): the shards it lists were not checked; fix index.json's structure first.")
            return nil
        }

        let classes = index.classes
        report.checked.classes = max(report.checked.classes, classes.count)
        for (i, c) in classes.enumerated() where c.index != i {
            report.add(indexPath, "classes[\(i)].index is '\(c.index)', expected \(i) (its position).")
        }
        let part = index.part.map { (index: $0.index, count: $0.count) }
        if let p = part, let name = OutputLocation.partName((dir as NSString).lastPathComponent),
           name.index != p.index || name.count != p.count {
            report.add(indexPath, "part is \(p.index) of \(p.count) but the folder is named '\((dir as NSString).lastPathComponent)'.")
        }

        // Shards, concurrently; results in shard order.
        let shards = index.shards
        let expect = Expect(indexPath: indexPath, classCount: classes.isEmpty ? nil : classes.count,
                            sdf: index.maps.storedSDF, rrw: index.maps.storedRRW, scales: Array(Set(index.maps.scales)).sorted(),
                            storage: index.maps.effectiveStorage, mapDType: index.maps.effectiveDType,
                            imageDType: index.imageDType, labelDType: index.labelDType, size: index.sliceSize,
                            medprepVersion: index.medprepVersion)
        var localIndex: [Int] = []
        var perFolder: [String: Int] = [:]
        for s in shards {
            let folder = s.file.split(separator: "/").dropLast().joined(separator: "/")
            localIndex.append(perFolder[folder, default: 0])
            perFolder[folder, default: 0] += 1
        }
        var facts = [ShardFacts](repeating: ShardFacts(), count: shards.count)
        let done = ShardDoneCounter()
        facts.withUnsafeMutableBufferPointer { buf in
            let out = UnsafeSendable(buf)
            let onShard = options.onShard
            let localIndex = localIndex
            parallelFor(shards.count, threads: max(1, options.jobs)) { k in
                out.value[k] = checkShard(dir: dir, position: k, localIndex: localIndex[k], entry: shards[k], expect: expect)
                onShard?(done.increment(), shards.count, shards[k].file)
            }
        }
        report.checked.shards += shards.count
        var firstLayout: (Int, ShardLayout)?
        for (k, f) in facts.enumerated() {
            report.problems += f.problems
            report.checked.bytes += f.hashedBytes
            report.checked.tensors += f.tensors
            if let l = f.layout {
                if let (k0, l0) = firstLayout {
                    if (l.channels, l.height, l.width) != (l0.channels, l0.height, l0.width) {
                        report.add(dir + "/" + shards[k].file,
                                   "holds \(l.channels)x\(l.height)x\(l.width) samples but \(shards[k0].file) holds \(l0.channels)x\(l0.height)x\(l0.width) (C x H x W).")
                    }
                } else {
                    firstLayout = (k, l)
                }
            }
        }

        // The shards tile 0 ..< sample_count in order.
        let sampleCount = index.sampleCount
        var cursor = 0
        for (k, s) in shards.enumerated() {
            let (first, n) = (s.firstSample, s.sampleCount)
            if first != cursor {
                report.add(indexPath, k == 0 ? "shards[0].first_sample is '\(first)', expected 0."
                                             : "shards[\(k)].first_sample is '\(first)', expected \(cursor) (where shards[\(k - 1)] ends).")
            }
            cursor = sat(first, n)
        }
        if cursor != sampleCount {
            report.add(indexPath, "sample_count is '\(sampleCount)' but the shards hold \(cursor) samples (the sum of shards[].sample_count).")
        }
        report.checked.samples += sampleCount

        // Per-sample vectors placed at their global sample numbers; only samples actually read
        // are placed, so an absurd count in an edited index allocates nothing.
        let unknown = Int32.min
        let readRows = facts.reduce(0) { sat($0, $1.rows) }
        let limit = max(0, min(sampleCount, readRows))
        var gCase = [Int32](repeating: unknown, count: limit)
        var gSlice = [Int32](repeating: 0, count: limit)
        var gCount = [Int32](repeating: 0, count: limit)
        var shardOf = [Int32](repeating: -1, count: limit)
        for (k, f) in facts.enumerated() {
            let first = shards[k].firstSample
            guard first >= 0, first < limit else { continue }
            for r in 0..<min(f.rows, limit - first) {
                gCase[first + r] = f.caseIndex[r]
                gSlice[first + r] = f.sliceIndex[r]
                gCount[first + r] = f.sliceCount[r]
                shardOf[first + r] = Int32(k)
            }
        }
        func where_(_ j: Int) -> (file: String, text: String) {
            let k = Int(shardOf[j])
            guard k >= 0 else { return (indexPath, "sample \(j)") }
            return (dir + "/" + shards[k].file, "sample \(j) (row \(j - shards[k].firstSample))")
        }

        // Cases.
        let cases = index.cases
        report.checked.cases += cases.count
        var caseByIndex: [Int: Int] = [:]
        var idSeen: [String: Int] = [:]
        var previousIndex: Int?
        for (i, c) in cases.enumerated() {
            let label = "cases[\(i)] ('\(c.id)')"
            do {
                let ci = c.caseIndex
                // case_index is the position in the whole sorted dataset: parts and skipped
                // cases leave gaps, but the order is always increasing.
                if let p = previousIndex, ci <= p {
                    report.add(indexPath, "\(label).case_index is '\(ci)', expected more than the previous case's \(p).")
                }
                if let other = caseByIndex[ci] {
                    report.add(indexPath, "\(label).case_index '\(ci)' is also cases[\(other)]'s.")
                } else {
                    caseByIndex[ci] = i
                }
                previousIndex = ci
            }
            if let other = idSeen[c.id] { report.add(indexPath, "\(label).id is also cases[\(other)]'s.") } else { idSeen[c.id] = i }
            if c.fold >= index.folds.k {
                report.add(indexPath, "\(label).fold is '\(c.fold)', expected 0..<\(index.folds.k) (folds.k).")
            }
        }

        // The cases' slice ranges tile 0 ..< sample_count in order.
        var caseCursor = 0
        for (i, c) in cases.enumerated() {
            let (f, n) = (c.sliceRange.firstSample, c.sliceRange.count)
            let label = "cases[\(i)] ('\(c.id)')"
            if f != caseCursor {
                report.add(indexPath, i == 0 ? "\(label).slice_range.first_sample is '\(f)', expected 0."
                                             : "\(label).slice_range.first_sample is '\(f)', expected \(caseCursor) (where the previous case's slices end).")
            }
            caseCursor = sat(f, n)
            if f >= 0, n >= 0, sat(f, n) > sampleCount {
                report.add(indexPath, "\(label).slice_range \(f)..<\(sat(f, n)) runs past sample_count \(sampleCount).")
            }
        }
        if caseCursor != sampleCount, !cases.isEmpty {
            report.add(indexPath, "the cases' slice ranges end at sample \(caseCursor) but sample_count is '\(sampleCount)'.")
        }

        // Over each case's range: the shards say this case, slices 0 ..< count in order.
        var flagged = [Bool](repeating: false, count: limit)
        for (i, c) in cases.enumerated() {
            let (ci, f, n) = (c.caseIndex, c.sliceRange.firstSample, c.sliceRange.count)
            guard f >= 0, n >= 1, f < limit else { continue }
            let label = "case '\(c.id)' (cases[\(i)], case_index \(ci))"
            var bad = 0
            var firstBad: (Int, String)?
            for j in f..<min(sat(f, n), limit) where gCase[j] != unknown {
                var what: String?
                if Int(gCase[j]) != ci {
                    what = "has case_index \(gCase[j]), expected \(ci)"
                } else if Int(gSlice[j]) != j - f {
                    what = "has slice_index \(gSlice[j]), expected \(j - f)"
                } else if Int(gCount[j]) != n {
                    what = "has slice_count \(gCount[j]), expected \(n) (the case's slice_range.count)"
                }
                if let what {
                    bad += 1
                    flagged[j] = true
                    if firstBad == nil { firstBad = (j, what) }
                }
            }
            if let (j, what) = firstBad {
                let w = where_(j)
                report.add(w.file, "\(label): \(w.text) \(what)" + (bad > 1 ? "; \(bad) of the case's \(n) samples disagree with its slice_range \(f)..<\(sat(f, n))." : "."))
            }
        }
        // Every other sample belongs to the case whose range holds it.
        var orphans: [Int32: (count: Int, first: Int)] = [:]
        for j in 0..<limit where gCase[j] != unknown && !flagged[j] {
            let ci = Int(gCase[j])
            if let i = caseByIndex[ci], case let r = cases[i].sliceRange, j >= r.firstSample, j < sat(r.firstSample, r.count) { continue }
            orphans[gCase[j], default: (0, j)].count += 1
        }
        for (ci, o) in orphans.sorted(by: { $0.value.first < $1.value.first }) {
            let w = where_(o.first)
            let more = o.count > 1 ? " (\(o.count) samples)" : ""
            if let i = caseByIndex[Int(ci)] {
                let c = cases[i]
                let range = "\(c.sliceRange.firstSample)..<\(sat(c.sliceRange.firstSample, c.sliceRange.count))"
                report.add(w.file, "\(w.text) has case_index \(ci) (case '\(c.id)') but lies outside that case's slice_range \(range)\(more).")
            } else {
                report.add(w.file, "\(w.text) has case_index \(ci), which no case in index.json has\(more).")
            }
        }

        // Folds: the seeded assignment (a note when they differ; manifests may one day set folds).
        if part == nil {
            let (k, seed) = (index.folds.k, index.folds.seed)
            let ids = cases.map(\.id) + index.skippedCases.map(\.id)
            if Set(ids).count == ids.count {
                let assigned = Folds.assign(ids: ids, k: k, seed: UInt64(seed))
                let differ = cases.filter { assigned[$0.id] != $0.fold }
                if let c = differ.first {
                    report.notes.append("\(indexPath): \(differ.count == 1 ? "1 case's fold differs" : "\(differ.count) cases' folds differ") from the seeded assignment (k \(k), seed \(seed)), e.g. case '\(c.id)' has fold \(c.fold), the assignment gives \(assigned[c.id]!).")
                }
            }
        }

        // Nothing else in the folder that looks like ours.
        let listed = Set(shards.map(\.file))
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        for name in names {
            if name.hasPrefix("shard-") && name.hasSuffix(".safetensors") && !listed.contains(name) {
                report.add(dir + "/" + name, "is not listed in index.json (left over from another run?).")
            } else if name == OutputFiles.journal {
                report.add(dir + "/" + name, "a conversion journal is still here: a convert is running in this folder or was interrupted.")
            } else if name.contains(".tmp-") {
                report.add(dir + "/" + name, "is a temporary file left by an interrupted write.")
            }
        }
        return PartInfo(dir: dir, part: part, caseIndices: cases.map(\.caseIndex), ids: cases.map(\.id))
    }

    // MARK: - One shard

    /// `position` is the shard's place in index.json `shards`; `localIndex` the `shard_index` its
    /// metadata must hold: the same, except in a merged index, where each part's shards keep
    /// their numbering from 0.
    package static func checkShard(dir: String, position k: Int, localIndex: Int, entry: ShardIndex.Shard, expect: Expect) -> ShardFacts {
        var f = ShardFacts()
        // A file name that is not a plain name in the folder was reported by the schema check.
        let name = entry.file
        guard IndexSchema.Pattern.shardFile.matches(name) else { return f }
        let path = dir + "/" + name
        func add(_ message: String) { f.problems.append(VerifyProblem(file: path, message: message)) }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(path)
        } catch {
            f.problems.append(problem(error, path))
            return f
        }
        f.hashedBytes = bytes.count
        if entry.bytes != bytes.count {
            add("is \(bytes.count) bytes, index.json shards[\(k)].bytes says '\(entry.bytes)'.")
        }
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update($0) }
        let sha = hasher.finalizeHex()
        if entry.sha256 != sha {
            add("sha256 is '\(sha)', index.json shards[\(k)].sha256 says '\(entry.sha256)'.")
        }
        let file: SafetensorsFile
        let summary: ShardCheck.Summary
        do {
            file = try SafetensorsReader.parse(bytes, path: path)
            f.tensors = file.tensors.count
            summary = try ShardCheck.validate(file)
        } catch {
            f.problems.append(problem(error, path))
            return f
        }
        let l = summary.layout
        if summary.shardIndex != localIndex {
            add("__metadata__ shard_index is '\(summary.shardIndex)', expected \(localIndex) (its position in index.json shards\(localIndex == k ? "" : " among its part's shards")).")
        }
        if entry.sampleCount != summary.sampleCount {
            add("holds \(summary.sampleCount) samples (__metadata__ sample_count), index.json shards[\(k)].sample_count says '\(entry.sampleCount)'.")
        }
        if expect.medprepVersion != summary.medprepVersion {
            add("__metadata__ medprep_version is '\(summary.medprepVersion)', index.json's is '\(expect.medprepVersion)'.")
        }
        if let kc = expect.classCount, kc != l.classCount {
            add("has K = \(l.classCount) classes (class_presence, maps), index.json classes lists \(kc).")
        }
        // What index.json says is stored must be there, and nothing else: an online index has no
        // map tensors, compact RRW derived from the SDF is not stored.
        let storageNote = expect.storage == .dense ? "" : " (maps.storage '\(expect.storage.rawValue)')"
        if expect.sdf != l.sdf {
            add(expect.sdf ? "has no 'sdf' tensor but index.json maps.sdf is true\(storageNote)." : "has 'sdf' tensors but index.json says none are stored\(storageNote).")
        }
        if expect.rrw != l.rrw {
            add(expect.rrw ? "has no 'rrw' tensor but index.json maps.rrw is true\(storageNote)." : "has 'rrw' tensors but index.json says none are stored\(storageNote).")
        }
        if l.sdf || l.rrw {
            if (expect.storage == .compact) != l.compactMaps {
                add("holds \(l.compactMaps ? "compact [P, h, w]" : "dense [N, K, h, w]") map tensors, index.json maps.storage is '\(expect.storage.rawValue)'.")
            }
            if expect.mapDType.safetensors != l.mapDType { add("map tensors are \(l.mapDType.rawValue), index.json maps.dtype is '\(expect.mapDType.rawValue)'.") }
        }
        if l.sdf || l.rrw, expect.scales != l.mapScales {
            add("has maps at scales \(l.mapScales), index.json maps.scales says \(expect.scales).")
        }
        if let d = expect.imageDType, let want = ShardLayout.ImageDType(rawValue: d), want != l.imageDType {
            add("tensor 'image' is \(l.imageDType.safetensors.rawValue), index.json parameters.dtypes.image is '\(d)'.")
        }
        if let d = expect.labelDType, let choice = ShardLayout.LabelDTypeChoice(rawValue: d) {
            let want: SafetensorsDType = choice == .uint16 || (choice == .auto && l.classCount > 255) ? .U16 : .U8
            if want != l.labelDType { add("tensor 'label' is \(l.labelDType.rawValue), index.json parameters.dtypes.label '\(d)' means \(want.rawValue).") }
        }
        if let s = expect.size, s != [l.height, l.width] {
            add("holds \(l.height)x\(l.width) slices, index.json parameters.geometry.size is \(s) ([H, W]).")
        }
        f.layout = l
        do {
            let n = summary.sampleCount
            f.caseIndex = try file.values("case_index", as: Int32.self)
            f.sliceIndex = try file.values("slice_index", as: Int32.self)
            f.sliceCount = try file.values("slice_count", as: Int32.self)
            let pcl = try file.values("pcl_partition", as: UInt8.self)
            for r in 0..<n {
                let want = ShardLayout.pclPartition(sliceIndex: Int(f.sliceIndex[r]), sliceCount: Int(f.sliceCount[r]))
                if Int(pcl[r]) != want {
                    add("sample \(r) (case \(f.caseIndex[r]), slice \(f.sliceIndex[r]) of \(f.sliceCount[r])): pcl_partition is \(pcl[r]), expected floor(4i/N)+1 = \(want).")
                    break
                }
            }
            let presence = try file.values("class_presence", as: UInt8.self)
            let labels: [UInt16] = l.labelDType == .U8 ? try file.values("label", as: UInt8.self).map(UInt16.init)
                                                      : try file.values("label", as: UInt16.self)
            let plane = l.height * l.width, kc = l.classCount
            var seen = [UInt8](repeating: 0, count: kc)
            for r in 0..<n {
                for c in 0..<kc { seen[c] = 0 }
                for p in (r * plane)..<((r + 1) * plane) { seen[Int(labels[p])] = 1 }
                if let c = (0..<kc).first(where: { seen[$0] != presence[r * kc + $0] }) {
                    add("sample \(r) (case \(f.caseIndex[r]), slice \(f.sliceIndex[r])): class_presence[\(c)] is \(presence[r * kc + c]) but class \(c) is \(seen[c] == 1 ? "in" : "not in") its label.")
                    break
                }
            }
        } catch {
            f.problems.append(problem(error, path))
        }
        return f
    }
}

/// A thread-safe counter (progress).
package final class ShardDoneCounter: @unchecked Sendable {
    private let lock = NSLockLite()
    private var value = 0
    package func increment() -> Int { lock.locked { value += 1; return value } }
}
