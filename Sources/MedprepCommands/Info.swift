import ArgumentParser
import MedprepCore
import MedprepIO

/// `medprep info FILE...`: one summary per file; bad files are reported and the rest go on.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise image files (NIfTI, PNG, JPEG): geometry, datatype, statistics, sha256.")

    @Argument(help: "Files to describe.") var files: [String]
    @Flag(help: "One JSON object per file (a JSON array for several files).") var json = false

    func run() throws {
        var results: [JSON] = []
        var failures = 0
        for path in files {
            do {
                let s = try ImageSummary(path: path)
                if json { results.append(s.json) } else { print(s.text) }
            } catch {
                failures += 1
                let message = (error as? MedprepError)?.at(path).description ?? "\(path): \(error)"
                printError(message)
                if json { results.append(ImageSummary.errorJSON(path: path, error)) }
            }
        }
        if json {
            print(files.count == 1 ? results[0].serialized(indent: 2) : JSON.array(results).serialized(indent: 2))
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
