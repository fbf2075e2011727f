import Foundation
import MedprepCore
import MedprepIO

/// One case: its id and the files that make it up.
public struct CaseFiles: Sendable, Equatable {
    public var id: String
    /// One path per image channel (absolute or relative to the working directory).
    public var images: [String]
    public var mask: String?
    public var nestedMasks: [String]
}

/// What discovery found: the cases, and files that could not be paired (reported, not fatal).
public struct Discovery: Sendable {
    public var cases: [CaseFiles]
    /// Human-readable pairing problems: image without mask and the like.
    public var problems: [(id: String, file: String, message: String)]
}

/// Finds the cases a set of templates describes (`ResolvedDataset` picks the templates). Results are sorted by id,
/// so nothing depends on directory listing order.
public enum CaseDiscovery {
    public static func discover(root: String, spec: CaseSpec) throws -> Discovery {
        let files = try listFiles(root)
        let excludes = try spec.exclude.map { try Template($0) }
        let kept = files.filter { f in !excludes.contains { $0.matches(f) } }
        let first = try Template(spec.images[0])
        var ids: [String: String] = [:]
        for f in kept { if let id = first.id(in: f) { ids[id] = f } }
        var cases: [CaseFiles] = []
        var problems: [(String, String, String)] = []

        // Files that look like masks but have no image are reported too.
        if let maskT = spec.mask.map({ try? Template($0) }) ?? nil {
            for f in files { if let id = maskT.id(in: f), ids[id] == nil, first.resolve(id: id, in: files) == nil {
                problems.append((id, root + "/" + f, "mask without image: no file matches '\(spec.images[0])' for case '\(id)'."))
            } }
        }
        for id in ids.keys.sorted() {
            var images: [String] = [root + "/" + ids[id]!]
            var missing = false
            for t in spec.images.dropFirst() {
                guard let f = try Template(t).resolve(id: id, in: files) else {
                    problems.append((id, root + "/" + ids[id]!, "image channel '\(t)' is missing for case '\(id)'."))
                    missing = true
                    break
                }
                images.append(root + "/" + f)
            }
            if missing { continue }
            var mask: String? = nil
            if let m = spec.mask {
                guard let f = try Template(m).resolve(id: id, in: files) else {
                    problems.append((id, images[0], "image without mask: no file matches '\(m)' for case '\(id)'."))
                    continue
                }
                mask = root + "/" + f
            }
            var nested: [String] = []
            for t in spec.nestedMasks ?? [] {
                guard let f = try Template(t).resolve(id: id, in: files) else {
                    problems.append((id, images[0], "nested mask '\(t)' is missing for case '\(id)'."))
                    missing = true
                    break
                }
                nested.append(root + "/" + f)
            }
            if missing { continue }
            cases.append(CaseFiles(id: id, images: images, mask: mask, nestedMasks: nested))
        }
        return Discovery(cases: cases, problems: problems)
    }

    /// Every regular file under `root`, as sorted relative paths (hidden entries skipped).
    package static func listFiles(_ root: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw MedprepError(.fileNotFound, path: root, "dataset folder not found.")
        }
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            var d: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &d), !d.boolValue { out.append(rel) }
        }
        return out.sorted()
    }
}

/// A path template: `{id}` = the case id (no '/'), `*` = anything but '/'; everything else literal.
package struct Template {
    package let source: String
    package let regex: NSRegularExpression

    package init(_ source: String) throws {
        self.source = source
        var pattern = "^"
        var rest = Substring(source)
        while !rest.isEmpty {
            if rest.hasPrefix("{id}") { pattern += "([^/]+?)"; rest = rest.dropFirst(4) }
            else if rest.hasPrefix("*") { pattern += "[^/]*"; rest = rest.dropFirst() }
            else { pattern += NSRegularExpression.escapedPattern(for: String(rest.first!)); rest = rest.dropFirst() }
        }
        do { regex = try NSRegularExpression(pattern: pattern + "$") } catch {
            throw MedprepError(.invalidArgument, "path template '\(source)' is not valid.")
        }
    }

    package func matches(_ path: String) -> Bool {
        regex.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)) != nil
    }

    /// The `{id}` part when the path matches.
    package func id(in path: String) -> String? {
        guard source.contains("{id}"), let m = regex.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)),
              let r = Range(m.range(at: 1), in: path) else { return nil }
        return String(path[r])
    }

    /// The one file matching this template with `{id}` filled in (nil when none; first sorted when several).
    package func resolve(id: String, in files: [String]) -> String? {
        guard let t = try? Template(source.replacingOccurrences(of: "{id}", with: id.replacingOccurrences(of: "*", with: ""))) else { return nil }
        return files.first { t.matches($0) }
    }
}

/// nnU-Net v2 raw dataset: dataset.json with channel_names, labels, file_ending;
/// imagesTr/{id}_{XXXX}{ending} and labelsTr/{id}{ending}.
public struct NNUNetDataset {
    public var caseSpec: CaseSpec
    public var labels: LabelSpec

    public static func load(root: String) throws -> NNUNetDataset {
        let path = root + "/dataset.json"
        let json: JSON
        do { json = try JSON.parse(String(decoding: try FileIO.readAll(path), as: UTF8.self)) } catch let e as MedprepError { throw e } catch {
            throw MedprepError(.invalidArgument, path: path, "is not valid JSON: \(error.localizedDescription)")
        }
        guard case .object(let channels)? = json["channel_names"] ?? json["modality"], !channels.isEmpty else {
            throw MedprepError(.invalidArgument, path: path, "key 'channel_names' is missing (expected {\"0\": \"CT\", ...}).")
        }
        guard case .object(let labelPairs)? = json["labels"], labelPairs.count >= 2 else {
            throw MedprepError(.invalidArgument, path: path, "key 'labels' is missing or has fewer than 2 entries (expected {\"background\": 0, ...}).")
        }
        let ending = json["file_ending"]?.stringValue ?? ".nii.gz"
        var classes: [(Int, String)] = []
        for (name, v) in labelPairs {
            // nnU-Net v2: name -> int; v1: "0" -> name.
            if let i = v.intValue { classes.append((i, name)) }
            else if let i = Int(name), let n = v.stringValue { classes.append((i, n)) }
            else {
                throw MedprepError(.invalidArgument, path: path, "label '\(name)' must map to an integer (region-based labels are not supported).")
            }
        }
        classes.sort { $0.0 < $1.0 }
        let images = (0..<channels.count).map { String(format: "imagesTr/{id}_%04d", $0) + ending }
        return NNUNetDataset(
            caseSpec: CaseSpec(images: images, mask: "labelsTr/{id}" + ending),
            labels: LabelSpec(classes: classes.map { ClassSpec(name: $0.1, value: $0.0) }))
    }
}
