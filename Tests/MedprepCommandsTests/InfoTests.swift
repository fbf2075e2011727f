import Foundation
import Testing
@testable import MedprepCommands
@testable import MedprepCore

/// `medprep info` JSON against the nibabel-written expectations (Tests/Fixtures/nifti/expected.json).
@Suite struct InfoTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("nifti/expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func summaryJSONCarriesNibabelValues() throws {
        let all = try expected()
        for name in ["scl_int16_half_minus10.nii", "aff_oblique.nii", "dim4d_int16.nii", "pair_int16.hdr"] {
            let e = try #require(all[name] as? [String: Any])
            let s = try ImageSummary(path: Self.fixtures.appendingPathComponent("nifti/\(name)").path)
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(s.json.serialized().utf8)) as? [String: Any])
            #expect(obj["dims"] as? [Int] == e["dims"] as? [Int], "\(name)")
            #expect(obj["datatype"] as? String == e["datatype"] as? String)
            #expect(obj["sha256"] as? String == e["file_sha256"] as? String)
            #expect(obj["orientation"] as? String == e["orientation"] as? String)
            let st = try #require(obj["stats"] as? [String: Any]), est = try #require(e["stats"] as? [String: Any])
            for key in ["min", "max", "mean", "std"] {
                let a = try #require(st[key] as? Double), b = try #require(est[key] as? Double)
                #expect(abs(a - b) <= 1e-6 * max(1, abs(b)), "\(name) \(key)")
            }
        }
    }

    @Test func badFileYieldsErrorObjectNamingIt() throws {
        let path = Self.fixtures.appendingPathComponent("hostile").path + "/does-not-exist.nii"
        let j = ImageSummary.errorJSON(path: path, MedprepError(.fileNotFound, path: path, "file not found."))
        #expect(j.serialized().contains("\"code\":\"fileNotFound\""))
        #expect(j.serialized().contains(path))
    }
}
