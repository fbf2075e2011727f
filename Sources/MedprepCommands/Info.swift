import ArgumentParser

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarise image files (NIfTI, PNG, JPEG).")
    @Argument(help: "Files to describe.") var files: [String]
    func run() throws {}
}
