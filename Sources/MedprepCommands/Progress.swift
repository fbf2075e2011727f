#if canImport(Glibc)
import Glibc
#endif
import MedprepCore

/// A progress bar with rate and ETA on stderr, drawn only when stderr is a terminal (scripts and
/// CI logs get the final one-line summary instead). Thread-safe.
final class ProgressBar: @unchecked Sendable {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private let start = monotonicSeconds()
    private var done = 0
    private var lastDraw = 0.0
    private let lock = NSLockLite()

    init(total: Int, label: String, enabled: Bool = stderrIsTerminal) {
        self.total = max(1, total)
        self.label = label
        self.enabled = enabled
    }

    func advance(_ n: Int = 1, note: String = "") {
        lock.locked {
            done += n
            let now = monotonicSeconds()
            guard enabled, now - lastDraw > 0.1 || done >= total else { return }
            lastDraw = now
            let frac = Double(done) / Double(total)
            let width = 30
            let filled = Int(frac * Double(width))
            let elapsed = now - start
            let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let line = "\r\(label) \(bar) \(done)/\(total) \(Int(frac * 100))% \(Self.clock(elapsed)) ETA \(Self.clock(eta)) \(note)"
            let padded = line.count < 100 ? line + String(repeating: " ", count: 100 - line.count) : line
            _ = padded.withCString { write(2, $0, strlen($0)) }
        }
    }

    func finish() {
        lock.locked {
            guard enabled else { return }
            _ = "\n".withCString { write(2, $0, 1) }
        }
    }

    static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(String(format2: (t % 3600) / 60))m" : "\(t / 60):\(String(format2: t % 60))"
    }
}

extension String {
    init(format2 v: Int) { self = v < 10 ? "0\(v)" : "\(v)" }
}
