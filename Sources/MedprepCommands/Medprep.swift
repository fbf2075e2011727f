import ArgumentParser

/// Root command; each subcommand is its own type in this module.
public struct Medprep: ParsableCommand {
    public static let version = "0.1.0"
    public static let configuration = CommandConfiguration(
        commandName: "medprep",
        abstract: "Turn medical image datasets into training-ready, checksummed shards.",
        version: version,
        subcommands: [Info.self, Convert.self, SynthCommand.self, ReadBench.self, Maps.self]
    )
    public init() {}
}
