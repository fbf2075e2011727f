import Foundation
import MedprepCore

/// Locates committed fixtures (Tests/Fixtures) and decodes the `expected.json` files that the
/// generator scripts under tools/fixtures write from nibabel / Pillow (the independent oracle).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    struct Stats: Decodable { let min: Double; let max: Double; let mean: Double; let std: Double }

    /// One entry of an expected.json (fields absent for formats that lack them).
    struct Expected: Decodable {
        let format: String
        let dims: [Int]
        let datatype: String
        let channels: Int
        let spacing: [Double]?
        let affine: [[Double]]?
        let affine_source: String?
        let orientation: String?
        let scl_slope: Double?
        let scl_inter: Double?
        let stats: Stats
        let raw_sha256: String
        let file_sha256: String
        /// [flat index into the interleaved voxel buffer, expected scaled value]
        let samples: [[Double]]
        /// PNG palette (RGB triples) for palette images.
        let palette: [Int]?
    }

    /// expected.json of a fixture folder, keyed by file name.
    static func expected(_ folder: String) throws -> [String: Expected] {
        let data = try Data(contentsOf: root.appendingPathComponent(folder).appendingPathComponent("expected.json"))
        return try JSONDecoder().decode([String: Expected].self, from: data)
    }

    static func relClose(_ a: Double, _ b: Double, rel: Double = 1e-6, abs absTol: Double = 1e-9) -> Bool {
        Swift.abs(a - b) <= Swift.max(absTol, rel * Swift.max(Swift.abs(a), Swift.abs(b)))
    }
}
