import Dispatch
import Foundation
import MedprepCore
import MedprepIO
import MedprepDataset

/// `medprep validate` as a library: every check over every case, in parallel, one read of each
/// file, memory bounded by one case per thread.
///
///     let report = try Validator(manifest: m, root: dir).run(threads: 4)
///     if report.hasErrors { ... report.errors ... }
///
/// `medprep convert` runs `Validator.checkErrors(...)` first: only error-level checks, which read
/// headers, masks and floating-point images only.
public final class Validator: Sendable {
    public let dataset: ResolvedDataset
    public let options: ValidationOptions

    public init(dataset: ResolvedDataset, options: ValidationOptions = .init()) {
        self.dataset = dataset
        self.options = options
    }

    /// A manifest already loaded (nil: look for manifest.yaml, dataset.json, or infer).
    public convenience init(manifest: Manifest?, root: String, options: ValidationOptions = .init()) throws {
        let ds = try manifest.map { try ResolvedDataset.resolve(root: root, manifest: $0) } ?? ResolvedDataset.resolve(root: root)
        self.init(dataset: ds, options: options)
    }

    public convenience init(root: String, manifestPath: String?, options: ValidationOptions = .init()) throws {
        self.init(dataset: try ResolvedDataset.resolve(root: root, manifestPath: manifestPath), options: options)
    }

    /// Error-level checks only (what convert runs before writing shards).
    public static func checkErrors(manifest: Manifest?, root: String, threads: Int = defaultThreadCount) throws -> ValidationReport {
        var o = ValidationOptions()
        o.scope = .errors
        return try Validator(manifest: manifest, root: root, options: o).run(threads: threads)
    }

    /// Runs every case (one bad case never stops the others) and the dataset-wide checks.
    /// `progress(done, total)` is called from worker threads after each case.
    public func run(threads: Int = defaultThreadCount, progress: (@Sendable (Int, Int) -> Void)? = nil) -> ValidationReport {
        let cases = dataset.cases
        let caseValidator = CaseValidator(labels: dataset.labels, options: options, geometry: dataset.geometry)
        let store = ResultStore(count: cases.count)
        let thumbs = options.thumbnailsDirectory
        if let thumbs { try? FileManager.default.createDirectory(atPath: thumbs, withIntermediateDirectories: true) }
        let counter = ResultStore.Counter()
        Self.dynamicParallel(cases.count, threads: threads) { i in
            let out = caseValidator.run(cases[i], needsImageData: false)
            var result = out.result
            if let thumbs, result.findings.contains(where: self.flags) {
                result.thumbnail = try? Thumbnails.write(caseID: result.id, directory: thumbs, image: out.image, codes: out.codes?.codes,
                                                         grid: out.grid, marks: out.marks, affine: out.affine,
                                                         geometry: self.dataset.geometry, findings: result.findings)
            }
            store.set(i, result)
            let done = counter.increment()
            progress?(done, cases.count)
        }
        var results = store.results.map { $0! }
        var datasetFindings = discoveryFindings()
        datasetFindings += datasetChecks(&results)

        // Thumbnails for cases flagged only by dataset-wide checks (a second read of those few).
        if let thumbs {
            let late = results.indices.filter { i in
                results[i].thumbnail == nil && results[i].findings.contains(where: self.flags)
            }
            let lateStore = ResultStore(count: late.count)
            let lateFindings = late.map { results[$0].findings }
            Self.dynamicParallel(late.count, threads: threads) { j in
                let i = late[j]
                let out = caseValidator.run(cases[i], needsImageData: true)
                var r = CaseResult(id: cases[i].id, images: [], mask: nil, nestedMasks: [])
                r.thumbnail = try? Thumbnails.write(caseID: cases[i].id, directory: thumbs, image: out.image, codes: out.codes?.codes,
                                                    grid: out.grid, marks: out.marks, affine: out.affine,
                                                    geometry: self.dataset.geometry, findings: lateFindings[j])
                lateStore.set(j, r)
            }
            for (j, i) in late.enumerated() { results[i].thumbnail = lateStore.results[j]?.thumbnail }
        }
        return ValidationReport(dataset: dataset, options: options, results: results, datasetFindings: datasetFindings)
    }

    /// Workers pull the next case index (cases differ in size, so no fixed blocks); results are
    /// stored by index, so nothing depends on scheduling.
    package static func dynamicParallel(_ n: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
        let t = max(1, min(threads, n))
        if t == 1 {
            for i in 0..<n { body(i) }
            return
        }
        let next = ResultStore.Counter()
        DispatchQueue.concurrentPerform(iterations: t) { _ in
            while true {
                let i = next.increment() - 1
                if i >= n { break }
                body(i)
            }
        }
    }

    /// Findings that earn a case a thumbnail: errors, and warnings unless only errors are checked.
    package func flags(_ f: Finding) -> Bool { f.severity == .error || (f.severity == .warning && options.scope == .all) }

    package func discoveryFindings() -> [Finding] {
        dataset.problems.map { p in
            let m = p.message.lowercased()
            let code: CheckCode
            let fix: String
            if m.hasPrefix("mask without image") {
                code = .maskWithoutImage
                fix = "add the image, or remove the stray mask (or add it to the manifest's cases.exclude)"
            } else if m.hasPrefix("image channel") {
                code = .imageChannelMissing
                fix = "add the missing channel file, or drop the case"
            } else {
                code = .imageWithoutMask
                fix = "add the mask, or move the image out of the dataset (or add it to cases.exclude)"
            }
            return Finding(code, case: p.id, file: p.file, p.message, fix: fix, magnitude: 1)
        }
    }

    // MARK: - dataset-wide checks

    package func datasetChecks(_ results: inout [CaseResult]) -> [Finding] {
        var out: [Finding] = []
        if dataset.cases.isEmpty {
            out.append(Finding(.noCases, case: nil, file: dataset.root,
                               "no complete case was found in '\(dataset.root)' (layout \(dataset.layout)).",
                               fix: "check the manifest's cases templates (or dataset.json's file_ending) against the file names",
                               magnitude: 1))
        }
        let decoded = results.filter { $0.classCounts != nil }
        // Classes: which appear where.
        var presentIn: [String: Int] = [:]
        var valueOf: [String: MaskCodes.Raw] = [:]
        for r in decoded {
            for (k, n) in r.classCounts!.enumerated() where n > 0 {
                let key = classKey(k, r)
                presentIn[key, default: 0] += 1
                valueOf[key] = r.classValues?[k]
            }
        }
        if dataset.labels == nil, !decoded.isEmpty {
            let values = valueOf.values.compactMap(\.number).sorted()
            out.append(Finding(
                .labelsInferred, case: nil, file: nil,
                "no manifest labels or dataset.json: classes inferred from the values found in \(decoded.count) masks: \(values.map { formatShort($0) }.joined(separator: ", ")) (0 = background).",
                fix: "write a manifest with labels.classes (names, values, ordinal) so unexpected values are caught",
                details: [("values", .numbers(values))], magnitude: 0))
        }
        guard options.scope == .all else { return out }
        if let labels = dataset.labels, !decoded.isEmpty {
            for (k, c) in labels.classes.enumerated() where k > 0 && presentIn[String(k)] == nil {
                let v = c.colour.map { "colour \($0)" } ?? "value \(c.value ?? k)"
                out.append(Finding(
                    .classMissingDataset, case: nil, file: nil,
                    "class '\(c.name)' (\(v)) appears in none of the \(decoded.count) masks.",
                    fix: "remove it from the manifest's classes, or check that the masks use the declared value",
                    details: [("class", .int(k)), ("masks", .int(decoded.count))], magnitude: Double(decoded.count)))
            }
        }
        let validator = CaseValidator(labels: dataset.labels, options: options, geometry: dataset.geometry)
        for i in results.indices where results[i].structureChecked {
            let r = results[i]
            guard let counts = r.classCounts, counts.dropFirst().contains(where: { $0 > 0 }) else { continue }
            var absent: [(Int, String, Int)] = []
            if let labels = dataset.labels {
                for k in 1..<labels.classes.count where (k >= counts.count || counts[k] == 0) {
                    if let n = presentIn[String(k)], n > 0 { absent.append((k, validator.className(k, values: r.classValues ?? []), n)) }
                }
            } else {
                let mine = Set(counts.indices.filter { counts[$0] > 0 }.map { classKey($0, r) })
                for (key, n) in presentIn.sorted(by: { $0.key < $1.key }) where !mine.contains(key) && valueOf[key] != .number(0) {
                    absent.append((0, "value \(valueOf[key]!.text)", n))
                }
            }
            if !absent.isEmpty {
                results[i].findings.append(Finding(
                    .classAbsent, case: r.id, file: r.mask,
                    "class\(absent.count > 1 ? "es" : "") \(absent.map { "\($0.1) (in \($0.2) other masks)" }.joined(separator: ", ")) \(absent.count > 1 ? "are" : "is") absent from this mask.",
                    fix: nil, details: [("classes", .array(absent.map { .string($0.1) }))], magnitude: Double(absent.count)))
            }
        }
        // Duplicate images: identical stored content, or the same canonical image (another
        // orientation, scaling or intensity unit: the copies convert turns into the same shards).
        var firstWithHash: [String: Int] = [:]
        var earlier: [[Int]: [Int]] = [:]  // canonical dims -> cases with a signature
        for i in results.indices {
            let sigs = results[i].signatures
            if let h = results[i].contentHash, let j = firstWithHash[h] {
                results[i].findings.append(Finding(
                    .duplicateCase, case: results[i].id, file: results[i].images.first,
                    "image content is identical to case '\(results[j].id)' (same grid, type and voxels); a duplicate leaks between folds.",
                    fix: "remove one of the two, or make sure both land in the same fold",
                    details: [("duplicate_of", .string(results[j].id)), ("content_hash", .string(h)), ("identical_bytes", .bool(true))],
                    magnitude: 1))
            } else if let sigs, let j = earlier[sigs[0].dims]?.first(where: { j in
                zip(results[j].signatures!, sigs).allSatisfy { $0.matches($1) } && results[j].signatures!.count == sigs.count
            }) {
                results[i].findings.append(Finding(
                    .duplicateCase, case: results[i].id, file: results[i].images.first,
                    "image is the same as case '\(results[j].id)' once both are in the canonical orientation: same grid, and intensities that differ only by a scale and offset (another orientation, scl_slope, data type or unit); convert makes the same shards of both, and a duplicate leaks between folds.",
                    fix: "remove one of the two, or make sure both land in the same fold",
                    details: [("duplicate_of", .string(results[j].id)), ("identical_bytes", .bool(false))], magnitude: 1))
            }
            if let h = results[i].contentHash, firstWithHash[h] == nil { firstWithHash[h] = i }
            if let sigs { earlier[sigs[0].dims, default: []].append(i) }
        }
        // Intensity outliers per image channel: a case's mean far from the dataset's median mean,
        // in units of the median within-case standard deviation, or its spread far off.
        let channels = results.map(\.imageStats.count).max() ?? 0
        for c in 0..<channels {
            let stats = results.indices.compactMap { i -> (Int, Moments)? in
                guard c < results[i].imageStats.count, let s = results[i].imageStats[c], s.count > 0 else { return nil }
                return (i, s)
            }
            guard stats.count >= options.outlierMinCases else { continue }
            let medMean = median(stats.map { $0.1.mean })
            let medStd = median(stats.map { $0.1.std })
            guard medStd > 0, medStd.isFinite else { continue }
            for (i, s) in stats {
                let shift = abs(s.mean - medMean) / medStd
                let ratio = s.std > 0 ? max(s.std / medStd, medStd / s.std) : .infinity
                guard shift > options.outlierZ || ratio > options.outlierSpreadRatio else { continue }
                results[i].findings.append(Finding(
                    .intensityOutlier, case: results[i].id, file: results[i].images[c],
                    "intensities (mean \(GeometryChecks.fmt(s.mean, 2)), std \(GeometryChecks.fmt(s.std, 2)), range \(GeometryChecks.fmt(s.min, 2)) to \(GeometryChecks.fmt(s.max, 2))) are far from the dataset's (median mean \(GeometryChecks.fmt(medMean, 2)), median std \(GeometryChecks.fmt(medStd, 2))): the mean is \(GeometryChecks.fmt(shift, 2)) typical standard deviations off and the spread \(GeometryChecks.fmt(ratio, 2))x.",
                    fix: "check the units and scaling (scl_slope, HU vs raw, 8 vs 16 bit) or the modality of this case",
                    details: [("channel", .int(c)), ("mean", .number(s.mean)), ("std", .number(s.std)), ("min", .number(s.min)), ("max", .number(s.max)),
                              ("dataset_median_mean", .number(medMean)), ("dataset_median_std", .number(medStd)),
                              ("mean_shift", .number(shift)), ("spread_ratio", .number(ratio))],
                    magnitude: max(shift, ratio)))
            }
        }
        return out
    }

    package func classKey(_ k: Int, _ r: CaseResult) -> String {
        dataset.labels != nil ? String(k) : (r.classValues.map { k < $0.count ? $0[k].text : String(k) } ?? String(k))
    }

    package func median(_ a: [Double]) -> Double {
        let s = a.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Per-index result slots filled by worker threads.
package final class ResultStore: @unchecked Sendable {
    private let lock = NSLockLite()
    private var slots: [CaseResult?]
    package init(count: Int) { slots = [CaseResult?](repeating: nil, count: count) }
    package func set(_ i: Int, _ r: CaseResult) { lock.locked { slots[i] = r } }
    package var results: [CaseResult?] { lock.locked { slots } }

    package final class Counter: @unchecked Sendable {
        private let lock = NSLockLite()
        private var value = 0
        package func increment() -> Int { lock.locked { value += 1; return value } }
    }
}
