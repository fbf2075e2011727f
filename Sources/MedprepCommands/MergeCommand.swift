import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep merge OUT`: joins the parts of a `convert --part i/n` job array into OUT/index.json.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Join the parts written by 'medprep convert --part i/n' into one index.json.")
    @Argument(help: "The --out folder the parts were written into.") var out: String
    @Flag(help: "Replace an existing OUT/index.json.") var force = false
    @Flag(help: "Print a JSON summary.") var json = false

    func run() throws {
        do {
            let r = try Merge.run(output: out, force: force)
            if json {
                print(JSON.object([("parts", .int(r.parts)), ("cases", .int(r.cases)), ("samples", .int(r.samples)),
                                   ("shards", .int(r.shards)), ("index", .string(out + "/index.json"))]).serialized(indent: 2))
            } else {
                print("merged \(r.parts) parts: \(r.cases) cases, \(r.samples) slices, \(r.shards) shards into \(out)/index.json")
            }
        } catch let e as MedprepError {
            printError(e.description)
            throw ExitCode(1)
        }
    }
}
