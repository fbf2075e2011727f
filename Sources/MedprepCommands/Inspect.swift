import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep inspect OUT`: what a convert output holds, and optionally PNG contact sheets.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise a convert output: cases, slices, class pixel shares, folds, shards, maps; optional PNG previews.",
        discussion: """
            Counts come from OUT/index.json, class pixel shares and per-slice class presence from the shards. \
            --preview DIR writes, for the first --max-cases cases, a labels sheet (image windowed to its 1st-99th \
            percentile, label overlaid) and a maps sheet (SDF and RRW of the first non-background class; blue \
            negative, white zero, red positive) of up to 12 evenly spaced slices, plus DIR/index.html. \
            See docs/inspect-verify.md. Run 'medprep verify' to check an output.
            """)

    @Argument(help: "Output folder of 'medprep convert' (or its index.json).") var out: String
    @Flag(help: "Print the summary as one JSON object.") var json = false
    @Option(help: "Write PNG contact sheets and index.html into this folder.") var preview: String?
    @Option(help: "Cases to preview (the first N).") var maxCases = 6

    func validate() throws {
        guard maxCases >= 1 && maxCases <= 100_000 else { throw ValidationError("--max-cases must be 1 to 100000, got '\(maxCases)'.") }
    }

    func run() throws {
        do {
            let bar = VerifyProgress(label: "inspect")
            let stats = try OutputStatistics.compute(out, onShard: json ? nil : { done, total in bar.advance(done, total, "") })
            bar.finish()
            var previewResult: PreviewRenderer.Result?
            if let preview {
                var options = PreviewRenderer.Options()
                options.maxCases = maxCases
                previewResult = try PreviewRenderer.render(output: out, to: preview, options: options)
            }
            if json {
                var o: JSON = stats.json
                if let p = previewResult, case .object(var members) = o {
                    members.append(("preview", p.json))
                    o = .object(members)
                }
                print(o.serialized(indent: 2))
            } else {
                print(stats.text())
                if let p = previewResult {
                    print("")
                    print("preview: \(p.sheets.count) sheets for \(Set(p.sheets.map(\.caseIndex)).count) cases in \(p.directory) (open \(p.indexFile))")
                }
            }
        } catch let e as MedprepError {
            printError(e.description)
            throw ExitCode(1)
        }
    }
}
