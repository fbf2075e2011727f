import Foundation
import Testing
@testable import MedprepCore
@testable import MedprepDataset
@testable import MedprepInspect
@testable import MedprepIO

/// Schemas/shard-index.schema.json held against the typed `ShardIndex`: every object the schema
/// describes has a type whose CodingKeys are the schema's properties in the schema's order, a key
/// is required by the decoder exactly when the schema requires it, and what convert writes is
/// what the type encodes, byte for byte.
@Suite struct ShardIndexTests {
    static let schema: JSON = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Schemas/shard-index.schema.json").path
        return try! JSON.parse(String(decoding: try! FileIO.readAll(path), as: UTF8.self))
    }()

    /// Schema location of each object, its type's keys, and where an instance sits in an index.
    static let objects: [(pointer: [String], keys: [String], instance: [InspectFixture.PathItem])] = [
        ([], ShardIndex.CodingKeys.allCases.map(\.rawValue), []),
        (["properties", "dataset"], ShardIndex.Dataset.CodingKeys.allCases.map(\.rawValue), ["dataset"]),
        (["$defs", "class"], ShardIndex.Class.CodingKeys.allCases.map(\.rawValue), ["classes", 1]),
        (["properties", "normalisation"], ShardIndex.Normalisation.CodingKeys.allCases.map(\.rawValue), ["normalisation"]),
        (["properties", "normalisation", "properties", "dataset", "items"], ShardIndex.CTChannel.CodingKeys.allCases.map(\.rawValue),
         ["normalisation", "dataset", 0]),
        (["properties", "normalisation", "properties", "cases", "items"], ShardIndex.CaseNormalisation.CodingKeys.allCases.map(\.rawValue),
         ["normalisation", "cases", 0]),
        (["properties", "normalisation", "properties", "cases", "items", "properties", "channels", "items"],
         ShardIndex.ChannelStatistics.CodingKeys.allCases.map(\.rawValue), ["normalisation", "cases", 0, "channels", 0]),
        (["properties", "maps"], ShardIndex.Maps.CodingKeys.allCases.map(\.rawValue), ["maps"]),
        (["$defs", "shard"], ShardIndex.Shard.CodingKeys.allCases.map(\.rawValue), ["shards", 0]),
        (["$defs", "source"], ShardIndex.Source.CodingKeys.allCases.map(\.rawValue), ["cases", 0, "sources", 0]),
        (["$defs", "case"], ShardIndex.Case.CodingKeys.allCases.map(\.rawValue), ["cases", 0]),
        (["$defs", "case", "properties", "original_geometry"], ShardIndex.OriginalGeometry.CodingKeys.allCases.map(\.rawValue),
         ["cases", 0, "original_geometry"]),
        (["$defs", "case", "properties", "slice_range"], ShardIndex.SliceRange.CodingKeys.allCases.map(\.rawValue), ["cases", 0, "slice_range"]),
        (["properties", "skipped_cases", "items"], ShardIndex.SkippedCase.CodingKeys.allCases.map(\.rawValue), ["skipped_cases", 0]),
        (["properties", "folds"], ShardIndex.Folds.CodingKeys.allCases.map(\.rawValue), ["folds"]),
        (["properties", "part"], ShardIndex.Part.CodingKeys.allCases.map(\.rawValue), ["part"]),
    ]

    static func node(_ pointer: [String]) -> JSON {
        var n = schema
        for p in pointer { n = n[p]! }
        return n
    }

    static func keys(_ j: JSON) -> [String] { if case .object(let o) = j { return o.map(\.0) }; return [] }

    @Test func everySchemaObjectIsATypeWithItsKeysInOrder() throws {
        for o in Self.objects {
            let n = Self.node(o.pointer)
            #expect(n["additionalProperties"] == .bool(false), "\(o.pointer) is closed")
            #expect(Self.keys(n["properties"]!) == o.keys, "\(o.pointer.joined(separator: "/"))")
        }
        // Nothing object-shaped in the schema is left without a type (parameters is free-form).
        var described: [String] = []
        func walk(_ j: JSON, _ path: [String]) {
            guard case .object(let members) = j else { return }
            if j["properties"] != nil, path.last != "contains" { described.append(path.joined(separator: "/")) }
            for (k, v) in members { walk(v, path + [k]) }
        }
        walk(Self.schema, [])
        #expect(Set(described) == Set(Self.objects.map { $0.pointer.joined(separator: "/") }), "\(described)")
    }

    /// A real index (dense 3D output) with the members convert writes only in some runs added:
    /// CT dataset statistics, a skipped case, a part.
    static func fullIndex() throws -> JSON {
        var j = try InspectFixture.readIndex(try InspectFixture.shared.get().out3D)
        j = InspectFixture.setting(j, ["normalisation", "dataset"], .array([.object([
            ("channel", .int(0)), ("lower", .number(-1)), ("upper", .number(2.5)), ("mean", .number(0.5)), ("std", .number(1)), ("samples", .int(9)),
        ])]))
        j = InspectFixture.setting(j, ["skipped_cases"], .array([.object([("id", .string("bad")), ("reason", .string("unreadable"))])]))
        j = InspectFixture.setting(j, ["part"], .object([("index", .int(0)), ("count", .int(1))]))
        return j
    }

    @Test func aKeyIsRequiredExactlyWhenTheSchemaRequiresIt() throws {
        let full = try Self.fullIndex()
        #expect(IndexSchema.check(full).isEmpty)
        let decoded = try ShardIndex(json: full)
        #expect(decoded.normalisation.dataset?.first?.samples == 9 && decoded.part?.count == 1 && decoded.skippedCases.count == 1)
        var tried = 0
        for o in Self.objects {
            let n = Self.node(o.pointer)
            // `required`, and the members of a oneOf of single requirements (a class's source_values / colours).
            let alternatives = (n["oneOf"]?.arrayValue ?? []).flatMap { $0["required"]?.arrayValue ?? [] }
            let required = Set(((n["required"]?.arrayValue ?? []) + alternatives).compactMap(\.stringValue))
            let instance = InspectFixture.value(full, o.instance)
            for key in Self.keys(instance) {
                let damaged = InspectFixture.setting(full, o.instance + [.key(key)], nil)
                let decodes = (try? ShardIndex(json: damaged)) != nil
                #expect(decodes == !required.contains(key), "\(o.instance) without '\(key)': decodes \(decodes), schema requires \(required.contains(key))")
                #expect(IndexSchema.check(damaged).isEmpty == !required.contains(key), "\(o.instance) without '\(key)'")
                tried += 1
            }
        }
        #expect(tried > 60)
    }

    /// What convert writes is the encoding of the decoded value, byte for byte (key order,
    /// number forms), for the 3D, grey 2D and colour 2D outputs.
    @Test func convertWritesWhatTheTypeEncodes() throws {
        let fx = try InspectFixture.shared.get()
        for out in [fx.out3D, fx.out2D, fx.outColour] {
            let text = String(decoding: try FileIO.readAll(out + "/index.json"), as: UTF8.self)
            let index = try IndexFile.read(path: out + "/index.json")
            #expect(try index.serialized() == text, "\(out)")
            #expect(try ShardIndex(json: try index.json) == index)
        }
    }

    @Test func decodingErrorsNameThePath() throws {
        let full = try Self.fullIndex()
        let bad = InspectFixture.setting(full, ["cases", 1, "fold"], .number(1.5))
        #expect(throws: (any Error).self) { try ShardIndex(json: bad) }
        do { _ = try ShardIndex(json: bad) } catch {
            #expect("\(error)".hasPrefix("cases[1].fold: expected an integer"), "\(error)")
        }
        // 2.0 is an integer (as JSON Schema counts it).
        #expect(try ShardIndex(json: InspectFixture.setting(full, ["cases", 1, "fold"], .number(2.0))).cases[1].fold == 2)
        let missing = InspectFixture.setting(full, ["maps", "units"], nil)
        do { _ = try ShardIndex(json: missing); Issue.record("decoded without maps.units") } catch {
            #expect("\(error)" == "maps: has no 'units'")
        }
    }
}

@Suite struct JSONValueDecoderTests {
    struct Item: Codable, Equatable {
        var n: Int
        var x: Double?
        var tags: [String]
        var free: JSON
        var small: UInt8?
    }

    @Test func roundTripKeepsOrderAndTypes() throws {
        let j = try JSON.parse(#"{"n": 3, "x": 1.25, "tags": ["a", "b"], "free": {"z": 1, "a": [true, null, 2.5]}}"#)
        let v = try JSONValueDecoder().decode(Item.self, from: j)
        #expect(v.n == 3 && v.x == 1.25 && v.tags == ["a", "b"] && v.small == nil)
        // The free-form member keeps its key order (z before a) through decode and encode.
        #expect(try JSONValueEncoder().encode(v).serialized() == #"{"n":3,"x":1.25,"tags":["a","b"],"free":{"z":1,"a":[true,null,2.5]}}"#)
        // null is an absent optional.
        #expect(try JSONValueDecoder().decode(Item.self, from: try JSON.parse(#"{"n": 1, "x": null, "tags": [], "free": 0}"#)).x == nil)
    }

    @Test(arguments: [
        (#"{"n": 1.5, "tags": [], "free": 0}"#, "n: expected an integer, found a number (1.5)"),
        (#"{"n": 1e30, "tags": [], "free": 0}"#, "n: expected an integer, found a number (1e+30)"),
        (#"{"n": "1", "tags": [], "free": 0}"#, "n: expected an integer, found a string (\"1\")"),
        (#"{"n": 1, "tags": ["a", 2], "free": 0}"#, "tags[1]: expected a string, found a number"),
        (#"{"n": 1, "tags": [], "free": 0, "small": 300}"#, "small: 300 does not fit in UInt8"),
        (#"{"n": 1, "free": 0}"#, "has no 'tags'"),
        (#"[1]"#, "expected an object, found an array"),
    ])
    func errorsSayWhereAndWhat(text: String, message: String) throws {
        do {
            _ = try JSONValueDecoder().decode(Item.self, from: try JSON.parse(text))
            Issue.record("decoded \(text)")
        } catch {
            #expect("\(error)" == message)
        }
    }
}

extension InspectFixture {
    static func setting(_ j: JSON, _ path: [PathItem], _ v: JSON?) -> JSON { setting(j, path[...], v) }

    /// The value at a path of keys and indices (null where there is none).
    static func value(_ j: JSON, _ path: [PathItem]) -> JSON {
        var n = j
        for p in path {
            switch p {
            case .key(let k): n = n[k] ?? .null
            case .index(let i): n = n.arrayValue.flatMap { i < $0.count ? $0[i] : nil } ?? .null
            }
        }
        return n
    }
}
