import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// `medprep synth DIR`: writes the built-in synthetic datasets (3D NIfTI, 2D PNG, 2D JPEG).
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write synthetic datasets: 3D NIfTI volumes with nested ordinal shells, 2D PNG/JPEG sets with grey-level and colour masks.")

    @Argument(help: "Folder to write into (created if missing).") var dir: String
    @Option(help: "Number of 3D cases.") var cases3d = 6
    @Option(help: "Number of 2D cases per 2D dataset.") var cases2d = 8
    @Option(help: "3D volume size x,y,z (z varies by up to +4 per case).") var size3d = "96,96,24"
    @Flag(help: "Also write datasets with one defective case per validation check (DIR/defects3d, defects2d, defects-inferred).") var defects = false
    @Flag(help: "Replace files a previous synth run wrote.") var force = false

    func run() throws {
        var opts = Synth.Options()
        opts.cases3D = cases3d
        opts.cases2D = cases2d
        let size = size3d.split(separator: ",").compactMap { Int($0) }
        guard size.count == 3, size.allSatisfy({ $0 >= 4 && $0 <= 1024 }) else {
            throw ValidationError("--size3d must be three sizes 4-1024 like '96,96,24', got '\(size3d)'.")
        }
        opts.size3D = size
        do {
            let dirs = try Synth.write(to: dir, options: opts, overwrite: force)
            for d in dirs { print("wrote \(d) (manifest: \(d)/manifest.yaml)") }
            if defects {
                for d in try SynthDefects.write(to: dir, overwrite: force) { print("wrote \(d) (defective cases; expected findings in \(d)/expected.json)") }
            }
        } catch let e as MedprepError {
            printError(e.description)
            throw ExitCode(1)
        }
    }
}
