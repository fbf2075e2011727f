import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepIO
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep manifest init DIR`: writes a starting manifest inferred from a dataset folder.
struct ManifestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest", abstract: "Dataset manifests.", subcommands: [Init.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Infer a starting manifest from a dataset folder.")
        @Argument(help: "Dataset folder.") var dir: String
        @Option(name: .shortAndLong, help: "Where to write it (default DIR/manifest.yaml; '-' prints it).") var out: String?
        @Flag(help: "Replace an existing manifest.") var force = false

        func run() throws {
            do {
                let inferred = try ManifestInit.infer(root: dir)
                for n in inferred.notes { printNote(n) }
                // Round-trip through the parser: a manifest we write must load.
                _ = try Manifest.parse(inferred.yaml, path: "<inferred>")
                let target = out ?? dir + "/manifest.yaml"
                if target == "-" { print(inferred.yaml, terminator: ""); return }
                try FileIO.writeAtomically(Array(inferred.yaml.utf8), to: target, overwrite: force)
                print("wrote \(target)")
            } catch let e as MedprepError {
                printError(e.description)
                throw ExitCode(1)
            }
        }
    }
}
