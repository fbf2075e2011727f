import ArgumentParser
import MedprepCore
import MedprepDataset
import MedprepValidate
import MedprepInspect
import MedprepConvert
import MedprepSynth

/// Root command; each subcommand is its own type in this module.
public struct Medprep: ParsableCommand {
    public static let version = "0.1.0"
    public static let configuration = CommandConfiguration(
        commandName: "medprep",
        abstract: "Turn medical image datasets into training-ready, checksummed shards.",
        version: version,
        subcommands: [Demo.self, Info.self, Convert.self, MergeCommand.self, ManifestCommand.self, SynthCommand.self, ReadBench.self, Maps.self, Validate.self, Verify.self, Inspect.self]
    )
    public init() {}

    /// Entry point. Like `main()`, except that `validate` reports usage errors (unknown flags,
    /// missing values) with exit status 2, as its exit-status contract says (0 clean, 1 findings,
    /// 2 usage); other commands keep ArgumentParser's 64.
    public static func runMain(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        AllocatorTuning.keepFreedMemory()
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            exit(withError: nil)
        } catch {
            if arguments.first == "validate", exitCode(for: error) == .validationFailure {
                let text = fullMessage(for: error)
                writeStderr((text.isEmpty ? "medprep validate: usage error" : text) + "\n")
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
