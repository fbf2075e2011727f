import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep verify OUT`: checks a convert output (index, every shard's bytes and tensors, the
/// cross-file rules of docs/shard-format.md). Exit 0 when it all checks, 1 otherwise.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a convert output: index structure, shard checksums, tensors, and that shards and cases fit together.",
        discussion: """
            Reads OUT/index.json and every shard it lists, hashing each file and validating its tensors \
            against the index (classes, maps, scales, dtypes), then checks that the shards tile the samples \
            and that every case's slices are present, in order, in one place. An OUT holding only \
            parts/*/index.json (convert --part) has each part checked. Prints one line per problem ('FILE: \
            message') and a summary, and exits 1 when there is any problem; see docs/inspect-verify.md.
            """)

    @Argument(help: "Output folder of 'medprep convert' (or its index.json).") var out: String
    @Flag(help: "Print {\"ok\", \"problems\", \"notes\", \"checked\"} as JSON.") var json = false
    @Option(help: "Shards checked concurrently (each is held in memory).") var jobs: Int = min(4, defaultThreadCount)

    func validate() throws {
        guard jobs >= 1 && jobs <= 256 else { throw ValidationError("--jobs must be 1 to 256, got '\(jobs)'.") }
    }

    func run() throws {
        var options = OutputVerifier.Options()
        options.jobs = jobs
        let progress = VerifyProgress(label: "verify")
        if !json { options.onShard = { done, total, file in progress.advance(done, total, file) } }
        let report = OutputVerifier.verify(out, options: options)
        progress.finish()
        if json {
            print(report.json.serialized(indent: 2))
        } else {
            // The report is the command's output: problems on stdout, one line each (exit 1 says it failed).
            for p in report.problems { print(p.description) }
            for n in report.notes { print("note: \(n)") }
            let c = report.checked
            let what = "\(c.parts > 0 ? "\(c.parts) part\(c.parts == 1 ? "" : "s"), " : "")\(c.shards) shard\(c.shards == 1 ? "" : "s") (\(verifyMiB(c.bytes)) MiB hashed), \(c.samples) samples, \(c.cases) cases"
            if report.ok {
                print("verified \(report.output): \(what): OK")
            } else {
                print("verify \(report.output): \(what): \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}

/// A shard progress bar on stderr (terminals only), created once the total is known.
final class VerifyProgress: @unchecked Sendable {
    private let lock = NSLockLite()
    private let label: String
    private var bar: ProgressBar?

    init(label: String) { self.label = label }

    func advance(_ done: Int, _ total: Int, _ file: String) {
        lock.locked {
            if bar == nil { bar = ProgressBar(total: total, label: label) }
            bar!.advance(note: file)
        }
    }

    func finish() { lock.locked { bar?.finish() } }
}

func verifyMiB(_ bytes: Int) -> String {
    let m = Double(bytes) / 1_048_576
    return m >= 100 ? String(Int(m.rounded())) : String(Double(Int((m * 10).rounded())) / 10)
}
