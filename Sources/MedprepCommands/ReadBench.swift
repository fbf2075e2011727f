import ArgumentParser
import MedprepCore
import MedprepIO
#if canImport(Glibc)
import Glibc
#endif

/// Hidden helper for tools/bench: times read + decompress + scaled float32 conversion in-process,
/// the same work as nibabel's `get_fdata(dtype=np.float32)`.
struct ReadBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read-bench", abstract: "Time image reads (for benchmarks).",
                                                    shouldDisplay: false)
    @Argument var files: [String]
    @Option(name: .customLong("repeat")) var repeats: Int = 5
    @Flag var json = false

    func run() throws {
        var out: [JSON] = []
        for path in files {
            var seconds: [Double] = [], readSeconds: [Double] = []
            var checksum = 0.0
            for _ in 0..<max(1, repeats) {
                let t0 = monotonicSeconds()
                let image = NIfTIReader.handles(path) ? try NIfTIReader.read(path: path, as: .scaledFloat32)
                    : try ImageReader.read(path: path)
                let t1 = monotonicSeconds()
                let floats = image.scaledFloats()  // free when already float32
                seconds.append(monotonicSeconds() - t0)
                readSeconds.append(t1 - t0)
                checksum += Double(floats.first ?? 0)  // keeps the work observable
            }
            out.append(.object([("path", .string(path)), ("seconds", .numbers(seconds)),
                                ("read_seconds", .numbers(readSeconds)), ("checksum", .number(checksum))]))
            if !json { print("\(path): median \(formatShort(seconds.sorted()[seconds.count / 2])) s") }
        }
        if json { print(files.count == 1 ? out[0].serialized() : JSON.array(out).serialized()) }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
