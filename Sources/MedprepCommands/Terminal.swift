#if canImport(Glibc)
import Glibc
#endif

/// One line to stderr, prefixed like ArgumentParser's own errors.
func printError(_ message: String) {
    let line = "medprep: error: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// True when stderr is a terminal (progress bars only then).
var stderrIsTerminal: Bool { isatty(2) != 0 }

/// An informational line to stderr (kept off stdout so --json and '-' outputs stay clean).
func printNote(_ message: String) {
    let line = "medprep: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Raw text to stderr.
func writeStderr(_ text: String) {
    _ = text.withCString { write(2, $0, strlen($0)) }
}
