import ArgumentParser
import Foundation
import MedprepCore

/// `medprep demo`: the whole job end to end on built-in synthetic data:
/// synth → validate → convert → verify → inspect (previews) → a training run long enough to
/// segment the synthetic data (`medprep-train --demo`, which prints the final Dice).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole pipeline on synthetic data: synth, validate, convert, verify, inspect, train.")

    @Option(name: .shortAndLong, help: "Output folder (created; medprep's own files in it are replaced).") var out = "demo-out"
    @Option(help: "Cases processed concurrently.") var jobs: Int = defaultThreadCount
    @Option(help: "medprep-train executable (default: .venv/bin/medprep-train, then PATH).") var trainer: String?
    @Flag(help: "Skip the training step.") var noTrain = false

    func run() throws {
        let data = out + "/data", shards = out + "/shards"
        step("synth", "synthetic datasets")
        try sub(["synth", data, "--force"])
        for ds in ["synth3d", "synth2d", "synth2d-colour"] {
            step("validate", ds)
            try sub(["validate", "\(data)/\(ds)", "--json", "\(out)/validate-\(ds).json", "--thumbnails", "\(out)/thumbnails/\(ds)"],
                    optional: true)
            step("convert", ds)
            try sub(["convert", "\(data)/\(ds)", "--out", "\(shards)/\(ds)", "--force", "--jobs", String(jobs)])
            step("verify", ds)
            try sub(["verify", "\(shards)/\(ds)"], optional: true)
        }
        step("inspect", "synth3d with previews")
        try sub(["inspect", "\(shards)/synth3d", "--preview", "\(out)/preview"], optional: true)
        if noTrain { return }
        step("train", "a U-Net on synth3d fold 0 (about a minute on 2 CPU cores)")
        guard let exe = trainer ?? findTrainer() else {
            printNote("skipping training: medprep-train not found (tools/setup.sh --train installs it into .venv).")
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["--index", "\(shards)/synth3d/index.json", "--fold", "0", "--out", "\(out)/train", "--demo"]
            + (stderrIsTerminal ? [] : ["--no-progress"])
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            printError("medprep-train exited with status \(p.terminationStatus).")
            throw ExitCode(1)
        }
        print("demo done: shards in \(shards), previews in \(out)/preview, training curves and overlays in \(out)/train")
    }

    func step(_ name: String, _ what: String) { printNote("== \(name): \(what)") }

    /// Runs another medprep subcommand in-process. `optional` steps whose command is not built
    /// into this binary are skipped with a note; their failures still fail the demo.
    func sub(_ args: [String], optional: Bool = false) throws {
        var cmd: ParsableCommand
        do { cmd = try Medprep.parseAsRoot(args) } catch {
            if optional { printNote("skipping '\(args[0])': \(Medprep.message(for: error))"); return }
            throw error
        }
        try cmd.run()
    }

    func findTrainer() -> String? {
        let local = FileManager.default.currentDirectoryPath + "/.venv/bin/medprep-train"
        if FileManager.default.isExecutableFile(atPath: local) { return local }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/medprep-train"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}
