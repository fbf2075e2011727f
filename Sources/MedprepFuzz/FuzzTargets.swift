import CMedprep
import Glibc
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepConvert
@testable import MedprepInspect
@testable import MedprepIO

/// One fuzz target per parser. Each feeds the input to the parser the way a user's file reaches
/// it (bytes, or a file in a per-process scratch folder for path-based readers) and checks what
/// "no crash" does not: a successful parse must be self-consistent. A MedprepError is the
/// expected outcome for most inputs; any other failure, trap or sanitizer report is a finding.
enum FuzzTargets {
    typealias Target = @Sendable ([UInt8]) -> Void
    nonisolated(unsafe) static var selected: Target?

    static let all: [String: Target] = [
        "nifti": { nifti($0, name: "input.nii") },
        "nifti-gz": { nifti($0, name: "input.nii.gz") },
        "png": png,
        "jpeg": jpeg,
        "safetensors": safetensors,
        "index": index,
        "journal": journal,
        "manifest-yaml": { manifest($0, name: "manifest.yaml") },
        "manifest-json": { manifest($0, name: "manifest.json") },
    ]

    /// The decoded-size cap of the image targets: a file claiming more is refused (tooLarge), so a
    /// run never allocates what a header claims.
    static let maxDecoded = 64 << 20

    /// A scratch folder of this process in /dev/shm (or the temporary folder).
    static let scratch: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        let dir = "\(base)/medprep-fuzz-\(getpid())"
        mkdir(dir, 0o700)
        return dir
    }()

    static func file(_ name: String, _ bytes: [UInt8]) -> String {
        let path = "\(scratch)/\(name)"
        try! FileIO.writeAtomically(bytes, to: path)
        return path
    }

    static func fail(_ what: String) -> Never {
        fatalError("invariant broken: \(what)")
    }

    static func nifti(_ bytes: [UInt8], name: String) {
        let path = file(name, bytes)
        guard let image = try? NIfTIReader.read(path: path) else { return }
        if image.voxels.count != image.dims.reduce(1, *) * image.channels { fail("voxel count \(image.voxels.count) vs dims \(image.dims)") }
        if name.hasSuffix(".gz") {
            // What was accepted must be a gzip stream zlib inflates and CRC-checks to its end.
            var out = [UInt8](repeating: 0, count: 1)
            var got = 0
            var err = [CChar](repeating: 0, count: 256)
            let rc = bytes.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in mp_gzip_prefix_verified(b.baseAddress, b.count, o.baseAddress, 1, &got, &err, err.count) }
            }
            if rc != Int32(MP_OK) { fail("accepted a .nii.gz whose stream zlib refuses: \(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))") }
        }
    }

    static func png(_ bytes: [UInt8]) {
        guard let image = try? PNGCodec.decode(bytes, path: "input.png", maxDecodedBytes: maxDecoded) else { return }
        if image.voxels.count != image.dims.reduce(1, *) * image.channels { fail("PNG voxel count") }
    }

    static func jpeg(_ bytes: [UInt8]) {
        guard let image = try? JPEGCodec.decode(bytes, path: "input.jpg", maxDecodedBytes: maxDecoded) else { return }
        if image.voxels.count != image.dims.reduce(1, *) * image.channels { fail("JPEG voxel count") }
    }

    static func safetensors(_ bytes: [UInt8]) {
        guard let file = try? SafetensorsReader.parse(bytes, path: "input.safetensors") else { return }
        for t in file.header.tensors where file.header.dataStart + t.end > bytes.count || t.begin > t.end {
            fail("tensor '\(t.name)' spans \(t.begin)..<\(t.end) of the data, past the \(bytes.count)-byte file")
        }
        _ = try? ShardCheck.validate(file)
    }

    /// Beyond "no crash": an index with the schema's structure decodes as a `ShardIndex` (the
    /// typed index is never stricter than the schema verify checks), and it encodes back to
    /// JSON that passes the schema and decodes to the same value.
    static func index(_ bytes: [UInt8]) {
        guard let parsed = try? IndexFile.parse(path: file("index.json", bytes)), IndexSchema.check(parsed.json).isEmpty else { return }
        let typed: ShardIndex
        do { typed = try ShardIndex(json: parsed.json) } catch { fail("a schema-valid index does not decode: \(error)"); return }
        guard let again = try? typed.json else { fail("a decoded index does not encode"); return }
        if let problem = IndexSchema.check(again).first { fail("a re-encoded index breaks the schema: \(problem)") }
        if (try? ShardIndex(json: again)) != typed { fail("a re-encoded index decodes to another value") }
    }

    static func journal(_ bytes: [UInt8]) {
        _ = file(OutputFiles.journal, bytes)
        _ = try? Journal.load(dir: scratch, fingerprint: "fuzz", resume: true)
    }

    static func manifest(_ bytes: [UInt8], name: String) {
        _ = try? Manifest.load(path: file(name, bytes))
    }
}
