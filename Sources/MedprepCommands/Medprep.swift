import ArgumentParser

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
}
