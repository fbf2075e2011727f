import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep convert DATASET --out OUT`: the main job.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a dataset folder into checksummed safetensors shards and an index.",
        discussion: """
            Cases are found from the manifest (DATASET/manifest.yaml by default, or nnU-Net's dataset.json), \
            processed on --jobs workers and packed into shards in case order; index.json is written last. \
            Output is byte-identical for any --jobs. An interrupted run continues with --resume.
            """)

    @Argument(help: "Dataset folder.") var dataset: String
    @Option(name: .shortAndLong, help: "Output folder.") var out: String
    @Option(help: "Manifest (YAML or JSON); default DATASET/manifest.yaml.") var manifest: String?
    @Option(help: "Cases processed concurrently (default: cores).") var jobs: Int = defaultThreadCount
    @Option(help: "Convert part i of n (0-based, e.g. 0/4) for job arrays; join parts with 'medprep merge'.") var part: String?
    @Flag(help: "Replace existing medprep output in OUT.") var force = false
    @Flag(help: "Continue an interrupted run.") var resume = false
    @Flag(help: "Skip cases that cannot be read or normalised (listed in the index) instead of stopping; implies --allow-errors.") var skipBad = false
    @Flag(help: "Do not run validate's error-level checks first.") var skipValidation = false
    @Flag(help: "Convert even when validation finds errors.") var allowErrors = false
    @Flag(help: "Print a JSON summary instead of text.") var json = false
    @Flag(help: "Print the plan (slices, shards, projected bytes per map storage mode, free space) from the headers alone and write nothing; exit 1 when the run would fail.")
    var dryRun = false

    func validate() throws {
        guard jobs >= 1 && jobs <= 256 else { throw ValidationError("--jobs must be 1 to 256, got '\(jobs)'.") }
        if force && resume { throw ValidationError("--force and --resume cannot be combined.") }
        if let part, parsePart(part) == nil { throw ValidationError("--part must look like 'i/n' with 0 <= i < n, got '\(part)'.") }
    }

    func parsePart(_ s: String) -> (Int, Int)? {
        let p = s.split(separator: "/").compactMap { Int($0) }
        guard p.count == 2, p[1] >= 1, p[0] >= 0, p[0] < p[1] else { return nil }
        return (p[0], p[1])
    }

    func run() throws {
        var opts = ConvertOptions(datasetRoot: dataset, manifestPath: manifest, output: out)
        opts.jobs = jobs
        opts.force = force
        opts.resume = resume
        opts.skipBad = skipBad
        opts.skipValidation = skipValidation
        opts.allowErrors = allowErrors
        opts.part = part.flatMap(parsePart)
        opts.medprepVersion = Medprep.version
        do {
            let run = try ConvertRun(options: opts)
            for p in run.discoveryProblems { printNote("warning: \(p.file): \(p.message)") }
            if dryRun {
                let plan = ConvertPreflight.plan(run: run)
                print(json ? plan.json.serialized(indent: 2) : plan.text)
                if plan.failure != nil { throw ExitCode(1) }
                return
            }
            let bar = ProgressBar(total: run.cases.count, label: "convert")
            run.onCase = { done, _, id in bar.advance(note: id) }
            let summary = try run.run()
            bar.finish()
            for w in summary.warnings { printNote("warning: \(w)") }
            if json {
                print(summary.json.serialized(indent: 2))
            } else if summary.alreadyComplete {
                print("already complete: \(summary.cases) cases, \(summary.samples) slices, \(summary.shards) shards verified; nothing to resume: \(summary.indexPath)")
            } else {
                print("converted \(summary.cases) cases (\(summary.skipped) skipped) into \(summary.samples) slices, "
                    + "\(summary.shards) shards, \(formatShort(Double(summary.bytes) / 1_048_576)) MiB in \(formatShort(summary.seconds)) s: \(summary.indexPath)")
            }
        } catch let e as MedprepError {
            printError(e.description)
            throw ExitCode(1)
        }
    }
}
