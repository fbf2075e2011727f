import Foundation
import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// Options of one `medprep convert` run (the manifest holds the dataset parameters).
public struct ConvertOptions: Sendable {
    public var datasetRoot: String
    public var manifestPath: String?
    public var output: String
    public var jobs: Int = defaultThreadCount
    public var force = false
    public var resume = false
    public var skipBad = false
    /// Skip the error-level validation that runs before converting.
    public var skipValidation = false
    /// Convert even when validation finds errors (bad cases then fail, or are skipped with skipBad).
    public var allowErrors = false
    /// (i, n): convert the i-th of n contiguous blocks of cases (0-based).
    public var part: (Int, Int)? = nil
    public var medprepVersion = "0.1.0"
    public init(datasetRoot: String, manifestPath: String? = nil, output: String) {
        self.datasetRoot = datasetRoot; self.manifestPath = manifestPath; self.output = output
    }
}

/// What a finished run reports.
public struct ConvertSummary: Sendable {
    public var cases: Int
    public var skipped: Int
    public var samples: Int
    public var shards: Int
    public var bytes: Int
    public var indexPath: String
    public var seconds: Double
    /// `--resume` found the output complete and verified it: nothing was written.
    public var alreadyComplete = false
    /// Cases whose shaping cut off foreground (fit pad-or-crop or crop-foreground): id, pixels.
    public var croppedForeground: [(id: String, pixels: Int)] = []
    public var json: JSON {
        .object([("cases", .int(cases)), ("skipped", .int(skipped)), ("samples", .int(samples)), ("shards", .int(shards)),
                 ("bytes", .int(bytes)), ("index", .string(indexPath)), ("seconds", .number((seconds * 1000).rounded() / 1000)),
                 ("foreground_pixels_cropped", .object(croppedForeground.map { ($0.id, .int($0.pixels)) })),
                 ("already_complete", .bool(alreadyComplete))])
    }
    /// One warning per case that lost foreground to the slice size.
    public var warnings: [String] {
        croppedForeground.map { "case '\($0.id)': shaping to geometry.size cut off \($0.pixels) foreground pixels (index.json cases[].foreground_pixels_cropped); a larger size keeps them." }
    }
}

/// The conversion driver: plans the run, processes cases on `jobs` workers, places their samples
/// into fixed-size shards in case order, journals progress after every shard (for --resume) and
/// writes index.json last. Output bytes depend only on the inputs and the manifest.
public final class ConvertRun {
    public let options: ConvertOptions
    public let manifest: Manifest
    public let labels: LabelSpec
    public let cases: [CaseFiles]
    /// Position of each case of this run in the full sorted dataset (its case_index).
    public let caseIndices: [Int]
    public let discoveryProblems: [(id: String, file: String, message: String)]
    /// The dataset as resolved for this run; its error-level validation runs on this value.
    public let dataset: ResolvedDataset
    package let outDir: String
    /// Called after each case is placed (for progress bars): (cases done, cases total, case id).
    public var onCase: ((Int, Int, String) -> Void)?


    /// `manifest`: use this one instead of reading the manifest file (manifest init's projection).
    public init(options: ConvertOptions, manifest given: Manifest? = nil) throws {
        self.options = options
        // The dataset as validate sees it (one manifest lookup, one layout rule); classes must be
        // declared. `given`: the same folder with a manifest held in memory (manifest init).
        let resolved = try given.map { try ResolvedDataset.resolve(root: options.datasetRoot, manifest: $0, manifestPath: options.manifestPath) }
            ?? ResolvedDataset.resolve(root: options.datasetRoot, manifestPath: options.manifestPath)
        let labels = try resolved.conversionLabels()
        manifest = resolved.effectiveManifest
        guard !resolved.cases.isEmpty else {
            throw MedprepError(.invalidArgument, path: resolved.root, "no cases found (check the manifest's 'cases' templates).")
        }
        dataset = resolved
        self.labels = labels
        discoveryProblems = resolved.problems
        var all = Array(resolved.cases.enumerated())
        if let (i, n) = options.part {
            guard n >= 1, i >= 0, i < n else { throw MedprepError(.invalidArgument, "--part '\(i)/\(n)' must satisfy 0 <= i < n.") }
            let lo = resolved.cases.count * i / n, hi = resolved.cases.count * (i + 1) / n
            all = Array(all[lo..<hi])
        }
        cases = all.map(\.element)
        caseIndices = all.map(\.offset)
        allCases = resolved.cases
        if let (i, n) = options.part {
            outDir = options.output + "/parts/\(i)-of-\(n)"
        } else {
            outDir = options.output
        }
    }

    package let allCases: [CaseFiles]

    /// Error-level findings of `medprep validate` on this dataset (empty when skipped).
    public private(set) var validationErrors: [Finding] = []

    /// Runs the conversion. Throws on the first bad case unless skipBad.
    ///
    /// Validation (error-level checks, unless skipped) runs on a thread of its own while the first
    /// cases are processed, but OUT is not touched (no folder made, nothing removed with --force,
    /// no shard written) until it has passed; any failure reports validation's errors first.
    public func run() throws -> ConvertSummary {
        let t0 = monotonicNow()
        if options.resume, FileIO.exists(outDir + "/index.json"), !FileIO.exists(outDir + "/" + OutputFiles.journal) {
            return try verifiedCompleteOutput(started: t0)
        }
        var validation: BackgroundWork<[Finding]>? = nil
        if !options.skipValidation {
            // This run's cases only (a job array of n parts reads each case once); discovery's
            // pairing problems are kept for every part.
            let (dataset, threads) = (dataset, max(1, options.jobs, defaultThreadCount))
            let mine: Set<String>? = options.part == nil ? nil : Set(cases.map(\.id))
            validation = BackgroundWork { Self.errorFindings(dataset: dataset, caseIDs: mine, threads: threads) }
        }
        defer { _ = try? validation?.wait() }
        do {
            if let failure = ConvertPreflight.plan(run: self).failure {
                try awaitValidation(validation)  // validation's findings, when it has any, say more
                throw MedprepError(.invalidArgument, path: options.output, "preflight: \(failure) Nothing was written (medprep convert --dry-run shows the plan).")
            }
            return try convert(validation: validation, started: t0)
        } catch {
            try awaitValidation(validation)
            throw error
        }
    }

    /// validate's error-level findings on the dataset (restricted to `caseIDs` when given; the
    /// pairing problems stay, they need no reading). The report does not depend on `threads`.
    package static func errorFindings(dataset given: ResolvedDataset, caseIDs: Set<String>?, threads: Int) -> [Finding] {
        var dataset = given
        if let caseIDs { dataset.cases = dataset.cases.filter { caseIDs.contains($0.id) } }
        var scope = ValidationOptions()
        scope.scope = .errors
        return Validator(dataset: dataset, options: scope).run(threads: threads).findings.filter { $0.severity == .error }
    }

    /// Waits for validation; throws when it found errors the options do not accept.
    package func awaitValidation(_ validation: BackgroundWork<[Finding]>?) throws {
        guard let validation else { return }
        validationErrors = try validation.wait()
        // --skip-bad is also consent to convert a dataset with errors: bad cases are skipped.
        if !validationErrors.isEmpty && !options.allowErrors && !options.skipBad {
            let shown = validationErrors.prefix(5).map { "  \($0.code.rawValue): \($0.file ?? $0.caseID ?? "") \($0.message)" }
            throw MedprepError(.invalidArgument, path: options.datasetRoot,
                               "validation found \(validationErrors.count) error(s); no shards were written (run 'medprep validate' for the full report; --allow-errors converts anyway):\n" + shown.joined(separator: "\n"))
        }
    }

    package func convert(validation: BackgroundWork<[Finding]>?, started t0: Double) throws -> ConvertSummary {
        try checkOutput()
        let folds = Folds.assign(ids: allCases.map(\.id), k: manifest.folds.k, seed: manifest.folds.seed)
        let jobs = max(1, options.jobs)
        var plan = ConvertPlan(manifest: manifest, labels: labels, root: options.datasetRoot, folds: folds, ctStatistics: nil,
                               threadsPerCase: max(1, defaultThreadCount / jobs))
        if manifest.intensity.mode == .ct { plan.ctStatistics = try computeCTStatistics(plan: plan) }

        var journal = try Journal.load(dir: outDir, fingerprint: fingerprint, resume: options.resume)
        /// Before the first write: validation has passed; then OUT is made ready (created, our old
        /// files removed with --force, a resumed run's partial writes removed).
        var outputReady = false
        func readyOutput() throws {
            guard !outputReady else { return }
            try awaitValidation(validation)
            try prepareOutput()
            outputReady = true
        }
        var builder: ShardBuilder? = nil
        var layout: ShardLayout? = nil
        let startPosition = journal.cursorCase
        var skipSlices = journal.cursorSlice
        var nextSample = journal.sampleCount  // global sample number of the next sample placed
        let planned = plan
        let sliceMaps = SliceMaps(manifest: manifest, classCount: labels.classes.count)
        let mapThreads = max(1, defaultThreadCount)
        let todo = Array(cases.indices.dropFirst(startPosition))
        // Shards are hashed and written on threads of their own while the next one fills. Up to
        // `writers` are in flight (one file-image buffer each, plus the one filling): SHA-256 is
        // one stream per shard, so with one writer the last shards' hashes ran alone on one core
        // after the maps were done. A writer saves the journal, as it stood when its shard was
        // sealed, once its shard and every earlier one are durable.
        let writers = min(4, max(2, defaultThreadCount / 2))
        var inFlight: [(write: BackgroundWork<ShardRecord>, shard: SealedShard)] = []
        var sealed = journal.shards.count
        defer { for w in inFlight { _ = try? w.write.wait() } }  // a failed run still waits for its writers
        let dir = outDir
        func finishOldestWrite() throws {
            let w = inFlight.removeFirst()
            let record = try w.write.wait()
            builder?.recycle(w.shard)
            journal.shards.append(record)
        }
        /// Seals the builder's shard (the journal already updated past it) and starts writing it.
        func startWrite() throws {
            try readyOutput()
            if inFlight.count == writers { try finishOldestWrite() }
            let shard = try builder!.seal(shardIndex: sealed)
            let first = nextSample - shard.sampleCount
            let progress = journal
            let earlier = inFlight.map(\.write)  // sealed before this one, not yet in `journal`
            sealed += 1
            inFlight.append((BackgroundWork {
                let record = try shard.write(directory: dir, firstSample: first)
                var durable = progress
                for e in earlier { durable.shards.append(try e.wait()) }
                durable.shards.append(record)
                try durable.save(dir: dir)
                return record
            }, shard))
        }
        try orderedParallel(count: todo.count, jobs: jobs, work: { [cases, caseIndices] k -> Result<CaseOutput, Error> in
            let pos = todo[k]
            return Result { try CaseProcessor.process(cases[pos], index: caseIndices[pos], plan: planned) }
        }, consume: { k, result in
            let pos = todo[k]
            let c = cases[pos]
            let out: CaseOutput
            switch result {
            case .success(let o): out = o
            case .failure(let e):
                let err = (e as? MedprepError) ?? MedprepError(.ioFailure, "\(e)")
                guard options.skipBad else {
                    throw MedprepError(err.code, path: err.path, "case '\(c.id)': \(err.message) (nothing was indexed; fix the case or use --skip-bad)")
                }
                journal.skipped.append(ShardIndex.SkippedCase(id: c.id, reason: err.description))
                journal.cursorCase = pos + 1
                onCase?(pos + 1, cases.count, c.id)
                return
            }
            if layout == nil {
                layout = try Self.layout(maps: manifest.maps, dtypes: manifest.dtypes, channels: out.channels,
                                         height: out.sliceHeight, width: out.sliceWidth, classes: labels.classes.count)
                builder = ShardBuilder(layout: layout!, medprepVersion: options.medprepVersion, capacity: manifest.shardSize,
                                       firstShardIndex: sealed)
            }
            guard out.channels == layout!.channels, out.sliceHeight == layout!.height, out.sliceWidth == layout!.width else {
                throw MedprepError(.mismatch, path: cases[pos].images[0],
                                   "case '\(c.id)' gives \(out.channels)x\(out.sliceHeight)x\(out.sliceWidth) slices but earlier cases gave \(layout!.channels)x\(layout!.height)x\(layout!.width); set geometry.size in the manifest.")
            }
            let firstOfCase = nextSample - skipSlices
            // Slices go in in runs that fill the current shard; each run's maps are computed on
            // every core straight into the shard (the case workers only shape slices).
            var s = skipSlices
            while s < out.slices.count {
                let n = min(manifest.shardSize - builder!.count, out.slices.count - s)
                let run = out.slices[s..<(s + n)]
                let (h, w) = (layout!.height, layout!.width)
                try builder!.append(run.map(\.sample), threads: mapThreads) { j, slots in
                    try sliceMaps.fill(run[run.startIndex + j], height: h, width: w, into: slots)
                }
                s += n
                nextSample += n
                if builder!.count == manifest.shardSize {
                    journal.sampleCount = nextSample
                    journal.cursorCase = s == out.slices.count ? pos + 1 : pos
                    journal.cursorSlice = s == out.slices.count ? 0 : s
                    if journal.cursorCase == pos + 1 { journal.cases.append(caseRecord(out, first: firstOfCase)); journal.normalisation.append(out.normalisation) }
                    try startWrite()
                }
            }
            skipSlices = 0
            if journal.cursorCase <= pos {
                journal.cases.append(caseRecord(out, first: firstOfCase))
                journal.normalisation.append(out.normalisation)
                journal.cursorCase = pos + 1
                journal.cursorSlice = 0
            }
            onCase?(pos + 1, cases.count, c.id)
        })
        if let b = builder, b.count > 0 {
            journal.sampleCount = nextSample
            try startWrite()
        }
        while !inFlight.isEmpty { try finishOldestWrite() }
        try readyOutput()  // a run that placed no sample (every case skipped) still validates first
        let index = makeIndex(journal: journal, ctStatistics: plan.ctStatistics)
        try FileIO.writeAtomically(Array(try index.serialized().utf8), to: outDir + "/index.json")
        unlink(outDir + "/" + OutputFiles.journal)
        let bytes = journal.shards.reduce(0) { $0 + $1.bytes }
        var summary = ConvertSummary(cases: journal.cases.count, skipped: journal.skipped.count, samples: journal.sampleCount,
                                     shards: journal.shards.count, bytes: bytes, indexPath: outDir + "/index.json",
                                     seconds: monotonicNow() - t0)
        summary.croppedForeground = journal.cases.compactMap { c in c.foregroundPixelsCropped.map { (c.id, $0) } }
        return summary
    }

    /// The shard layout of a run: slice size and classes, the manifest's dtypes and map storage.
    package static func layout(maps: MapsSpec, dtypes: DTypeSpec, channels: Int, height: Int, width: Int, classes: Int) throws -> ShardLayout {
        try ShardLayout(channels: channels, height: height, width: width, classCount: classes,
                        imageDType: dtypes.image, labelDType: dtypes.label,
                        sdf: maps.storedSDF, rrw: maps.storedRRW, mapScales: maps.storesMaps ? maps.scales : [],
                        mapDType: maps.dtype.safetensors, compactMaps: maps.storage == .compact)
    }

    package func caseRecord(_ out: CaseOutput, first: Int) -> ShardIndex.Case {
        var r = out.record
        r.sliceRange = ShardIndex.SliceRange(firstSample: first, count: out.slices.count)
        return r
    }

    /// Identifies what a journal belongs to: resuming with other inputs or parameters is refused.
    package var fingerprint: String {
        let partString = options.part.map { "\($0.0)/\($0.1)" } ?? "all"
        return SHA256.hex(Array("\(manifest.sha256)|\(partString)|\(cases.map(\.id).joined(separator: ","))|\(options.medprepVersion)".utf8))
    }

    /// `--resume` of an output that is already complete (a requeued job-array task): nothing to
    /// do once `medprep verify` passes on it and its index was written for these inputs
    /// (manifest, medprep version, this part's cases). Writes nothing; anything else is an error.
    package func verifiedCompleteOutput(started t0: Double) throws -> ConvertSummary {
        let indexPath = outDir + "/index.json"
        let report = OutputVerifier.verify(outDir)
        guard report.ok, let index = try? IndexFile.read(path: indexPath) else {
            let shown = report.problems.prefix(3).map { "  \($0)" }.joined(separator: "\n")
            throw MedprepError(.mismatch, path: indexPath,
                               "this output is complete but does not verify (\(report.problems.count) problem(s)); nothing was resumed (use --force to convert again):\n" + shown)
        }
        let ids = index.cases.map(\.id) + index.skippedCases.map(\.id)
        var differences: [String] = []
        if index.manifestSHA256 != manifest.sha256 { differences.append("the manifest") }
        if index.medprepVersion != options.medprepVersion { differences.append("the medprep version") }
        if Set(ids) != Set(cases.map(\.id)) { differences.append("the cases") }
        if index.part.map({ [$0.index, $0.count] }) != options.part.map({ [$0.0, $0.1] }) { differences.append("the part") }
        guard differences.isEmpty else {
            throw MedprepError(.mismatch, path: indexPath,
                               "is a complete output of other inputs (\(differences.joined(separator: ", ")) differ); nothing was resumed (use --force to convert again).")
        }
        var summary = ConvertSummary(cases: index.cases.count, skipped: index.skippedCases.count, samples: index.sampleCount,
                                     shards: report.checked.shards, bytes: report.checked.bytes, indexPath: indexPath,
                                     seconds: monotonicNow() - t0)
        summary.alreadyComplete = true
        return summary
    }

    /// Refuses existing output without --force or --resume. Changes nothing.
    package func checkOutput() throws {
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: outDir)) ?? []
        if options.resume { return }
        let ours = existing.filter(OutputFiles.isOwn)
        if !ours.isEmpty && !options.force {
            throw MedprepError(.ioFailure, path: outDir, "already holds medprep output (\(ours.count) files); use --force to replace it or --resume to continue.")
        }
    }

    /// Creates OUT; with --force removes only files medprep writes (index.json,
    /// shard-*.safetensors, the journal, temp files). A resumed run keeps them but for a killed
    /// run's partial writes (temp files). Called only once the journal is accepted and validation
    /// has passed: a refused run leaves the folder exactly as it was.
    package func prepareOutput() throws {
        try checkOutput()
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: outDir)) ?? []
        for f in existing where OutputFiles.isOwn(f) && (!options.resume || f.contains(".tmp-")) { unlink(outDir + "/" + f) }
    }

    package func computeCTStatistics(plan: ConvertPlan) throws -> [CTStatistics] {
        var pooled: [[Float]] = []
        for c in allCases {
            let mask = try CaseProcessor.readMask(c, reference: try ImageReader.read(path: c.images[0]), plan: plan).0
            for (ch, p) in c.images.enumerated() {
                let img = try ImageReader.read(path: p).scaledFloats()
                if pooled.count <= ch { pooled.append([]) }
                pooled[ch] += try IntensityNormalization.foregroundSamples(image: img, labels: mask, maxSamples: 10_000)
            }
        }
        return try pooled.map { try CTStatistics.compute(samples: $0) }
    }

    package func makeIndex(journal: Journal, ctStatistics: [CTStatistics]?) -> ShardIndex {
        let classes = labels.classes.enumerated().map { i, c in
            ShardIndex.Class(index: i, name: c.name, sourceValues: c.colour == nil ? [c.value ?? i] : nil,
                             colours: c.colour.map { [$0] }, ordinalRank: labels.ordinal ? i : nil)
        }
        let mode = manifest.intensity.mode
        let statistics: String
        switch mode {
        case .zscore: statistics = "per case, all voxels"
        case .zscoreNonzero: statistics = "per case and channel, the image's non-zero voxels; all voxels when a channel has none"
        case .zscoreForeground: statistics = "per case, foreground (label > 0) voxels; all voxels when a case has none"
        case .ct: statistics = "dataset foreground percentiles 0.5/99.5, mean, std (10000 samples per case)"
        case .minmax: statistics = "per case min and max"
        case .rgb01: statistics = "stored value / 255 (8-bit) or / 65535 (16-bit)"
        case .none: statistics = "none"
        }
        let dataset = mode != .ct ? nil : (ctStatistics ?? []).enumerated().map { ch, s in
            ShardIndex.CTChannel(channel: ch, lower: s.lower, upper: s.upper, mean: s.mean, std: s.std, samples: s.count)
        }
        let pad = manifest.geometry.padValue.map(ShardIndex.PadValue.value)
            ?? .rule("background: each channel's minimum over the case, after normalisation (cases[].pad_values)")
        return ShardIndex(
            medprepVersion: options.medprepVersion, manifestSHA256: manifest.sha256, dataset: .init(name: manifest.name),
            classes: classes, ordinal: labels.ordinal, parameters: manifest.canonicalJSON,
            normalisation: .init(mode: mode, statistics: statistics, dataset: dataset, padValue: pad, cases: journal.normalisation),
            maps: ShardIndex.Maps(manifest.maps), shards: journal.shards, cases: journal.cases, skippedCases: journal.skipped,
            sampleCount: journal.sampleCount, folds: .init(k: manifest.folds.k, seed: Int(manifest.folds.seed)),
            part: options.part.map { ShardIndex.Part(index: $0.0, count: $0.1) })
    }
}

/// Progress written after every shard so an interrupted run can continue (--resume) and end with
/// the same bytes. Lists finished shards (with sha256), finished cases and where to restart.
package struct Journal: Codable, Sendable {
    package var fingerprint: String
    package var shards: [ShardIndex.Shard] = []
    package var cases: [ShardIndex.Case] = []
    package var normalisation: [ShardIndex.CaseNormalisation] = []
    package var skipped: [ShardIndex.SkippedCase] = []
    package var sampleCount = 0
    /// Position (in this run's case list) of the first case not completely in written shards,
    /// and how many of its slices are.
    package var cursorCase = 0
    package var cursorSlice = 0

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case fingerprint, shards, cases, normalisation, skipped, sampleCount = "sample_count"
        case cursorCase = "cursor_case", cursorSlice = "cursor_slice"
    }

    package init(fingerprint: String) { self.fingerprint = fingerprint }

    package static func load(dir: String, fingerprint: String, resume: Bool) throws -> Journal {
        let path = dir + "/" + OutputFiles.journal
        guard resume, FileIO.exists(path) else { return Journal(fingerprint: fingerprint) }
        let out: Journal
        do {
            out = try JSONValueDecoder().decode(Journal.self, from: try JSON.parse(String(decoding: try FileIO.readAll(path), as: UTF8.self)))
        } catch let e as MedprepError {
            throw e
        } catch {
            throw MedprepError(.badHeader, path: path, "is not a medprep journal (\(error)); cannot resume (use --force to start over).")
        }
        guard out.fingerprint == fingerprint else {
            throw MedprepError(.mismatch, path: path, "was written for other inputs or parameters; resume with the same manifest and cases, or use --force.")
        }
        guard out.cursorCase >= 0, out.cursorSlice >= 0, out.sampleCount >= 0 else {
            throw MedprepError(.badHeader, path: path, "has a negative cursor or sample count; cannot resume (use --force to start over).")
        }
        // Every shard the journal lists must still be what was written.
        for s in out.shards {
            // A shard is a file of the output folder itself: a path elsewhere ('../x', '/dev/zero')
            // would make resume read (or hang on) a file that is not medprep's.
            guard !s.file.isEmpty, !s.file.contains("/"), !s.file.hasPrefix(".") else {
                throw MedprepError(.mismatch, path: path, "names shard file '\(s.file)', which is not a file of the output folder; cannot resume (use --force to start over).")
            }
            let p = dir + "/" + s.file
            guard FileIO.exists(p), SHA256.hex(try FileIO.readAll(p)) == s.sha256 else {
                throw MedprepError(.mismatch, path: p, "is missing or changed since it was written; cannot resume (use --force to start over).")
            }
        }
        return out
    }

    package func save(dir: String) throws {
        try FileIO.writeAtomically(Array(try JSONValueEncoder().encode(self).serialized().utf8), to: dir + "/" + OutputFiles.journal)
    }
}

package func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
