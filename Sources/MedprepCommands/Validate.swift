import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepIO
#if canImport(Glibc)
import Glibc
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth
#endif

/// `medprep validate DATASET`: annotation and geometry consistency checks, every case, one
/// report. Exit status: 0 no errors, 1 errors (with --strict: errors or warnings), 2 usage.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a dataset's images and masks: pairing, geometry, label values, ordinal structure, outliers.",
        discussion: """
            Findings have a stable code, a severity (error, warning, info), the case and file, a message with the \
            values involved and a suggested fix; docs/validate.md lists every code. Classes come from the manifest \
            (--manifest, else DATASET/manifest.yaml), else nnU-Net's dataset.json, else they are inferred from the \
            mask values. Exit status: 0 without errors, 1 with errors (--strict: or warnings), 2 on usage errors.
            """)

    @Argument(help: "Dataset folder.") var dataset: String
    @Option(help: ArgumentHelp("Manifest (YAML or JSON); default DATASET/manifest.yaml, then DATASET/dataset.json.", valueName: "file"))
    var manifest: String?
    @Option(name: .customLong("json"), help: ArgumentHelp("Write the full report as JSON to this file ('-' for stdout).", valueName: "report"))
    var jsonPath: String?
    @Option(help: ArgumentHelp("Write one PNG per flagged case into this folder.", valueName: "dir")) var thumbnails: String?
    @Flag(help: "Warnings also make the exit status 1.") var strict = false
    @Flag(help: "Run only the error-level checks (what convert runs first; integer images are not read).") var errorsOnly = false
    @Option(help: "Connectivity for components: 6 or 26 in 3D (4 or 8 in 2D; either spelling works).") var connectivity = 26
    @Option(help: "Components smaller than this many voxels (pixels in 2D) are reported.") var minComponent = 10
    @Option(help: "Cases checked concurrently (default: cores).") var threads = defaultThreadCount
    @Option(help: "Worst findings shown per code in the text report.") var examples = 3
    @Flag(help: "Print only the summary and the number of findings per code, not the findings themselves.") var quiet = false

    func usage(_ message: String) -> ExitCode {
        printError(message)
        return ExitCode(2)
    }

    func run() throws {
        guard [4, 6, 8, 26].contains(connectivity) else {
            throw usage("--connectivity must be 6 or 26 (3D) or 4 or 8 (2D), got '\(connectivity)'.")
        }
        guard minComponent >= 1 else { throw usage("--min-component must be at least 1, got '\(minComponent)'.") }
        guard threads >= 1 && threads <= 256 else { throw usage("--threads must be 1 to 256, got '\(threads)'.") }
        guard examples >= 0 else { throw usage("--examples must be 0 or more, got '\(examples)'.") }
        var options = ValidationOptions()
        options.scope = errorsOnly ? .errors : .all
        options.connectivity = [8, 26].contains(connectivity) ? 26 : 6
        options.minComponentSize = minComponent
        options.thumbnailsDirectory = thumbnails
        let validator: Validator
        do {
            validator = try Validator(root: dataset, manifestPath: manifest, options: options)
        } catch let e as MedprepError {
            throw usage(e.description)
        }
        #if canImport(Glibc)
        // Each case allocates and frees voxel-sized buffers; keep freed memory for the next case
        // instead of returning it to the kernel and faulting it in again (a third of the time on
        // large volumes). Peak memory is unchanged: it is still one case per thread.
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, Int32.max)
        #endif
        let bar = ProgressBar(total: validator.dataset.cases.count, label: "validate")
        let report = validator.run(threads: threads) { _, _ in bar.advance() }
        bar.finish()
        if let jsonPath {
            let text = report.json.serialized(indent: 2) + "\n"
            if jsonPath == "-" {
                print(text, terminator: "")
            } else {
                do { try FileIO.writeAtomically(Array(text.utf8), to: jsonPath) } catch let e as MedprepError {
                    throw usage(e.description)
                }
            }
        }
        if jsonPath != "-" {
            let text = report.text(examplesPerCode: quiet ? 0 : examples, strict: strict)
            print(text)
        }
        let code = report.exitCode(strict: strict)
        if code != 0 { throw ExitCode(code) }
    }
}

#if canImport(Glibc)
/// glibc's `int mallopt(int, int)` (malloc.h is not in the Glibc module map).
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
