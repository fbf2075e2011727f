import MedprepCore
import MedprepDataset

/// One case in the report.
public struct CaseSummary: Sendable {
    public var id: String
    public var images: [String]
    public var mask: String?
    public var nestedMasks: [String]
    /// "error", "warning", "info" (worst finding) or "ok".
    public var status: String
    public var dims: [Int]?
    public var spacing: [Double]?
    /// Voxels per class (declared order), when the mask was decoded.
    public var classVoxels: [Int]?
    public var structureChecked: Bool
    public var thumbnail: String?
}

/// The outcome of `medprep validate`: findings sorted (dataset-wide first, then by case id and
/// code), per-case summaries, and the summary counts. Same input, same report, whatever the
/// thread count. Schema: Schemas/validation-report.schema.json.
public struct ValidationReport: Sendable {
    public static let schemaVersion = 1

    public var root: String
    public var manifestPath: String?
    public var labelSource: ResolvedDataset.LabelSource
    public var layout: String
    public var labels: LabelSpec?
    public var options: ValidationOptions
    public var findings: [Finding]
    public var cases: [CaseSummary]

    package init(dataset: ResolvedDataset, options: ValidationOptions, results: [CaseResult], datasetFindings: [Finding]) {
        root = dataset.root
        manifestPath = dataset.manifestPath
        labelSource = dataset.labelSource
        layout = dataset.layout
        labels = dataset.labels
        self.options = options
        var all = datasetFindings + results.flatMap(\.findings)
        if options.scope == .errors { all = all.filter { $0.severity == .error } }
        let order = Dictionary(uniqueKeysWithValues: CheckCode.allCases.enumerated().map { ($0.element, $0.offset) })
        findings = all.sorted { a, b in
            if (a.caseID == nil) != (b.caseID == nil) { return a.caseID == nil }
            if let x = a.caseID, let y = b.caseID, x != y { return x < y }
            if a.code != b.code { return order[a.code]! < order[b.code]! }
            if (a.file ?? "") != (b.file ?? "") { return (a.file ?? "") < (b.file ?? "") }
            return a.message < b.message
        }
        var worst: [String: Severity] = [:]
        for f in findings { if let id = f.caseID { worst[id] = min(worst[id] ?? .info, f.severity) } }
        let declared = dataset.labels
        var summaries = results.map { r in
            CaseSummary(id: r.id, images: r.images, mask: r.mask, nestedMasks: r.nestedMasks,
                        status: worst[r.id]?.rawValue ?? "ok", dims: r.dims, spacing: r.spacing,
                        classVoxels: r.classCounts.map { counts in declared.map { Array(counts.prefix($0.classes.count)) } ?? counts },
                        structureChecked: r.structureChecked, thumbnail: r.thumbnail)
        }
        let known = Set(results.map(\.id))
        for p in dataset.problems where !known.contains(p.id) {
            if summaries.contains(where: { $0.id == p.id }) { continue }
            let strayMask = p.message.lowercased().hasPrefix("mask without image")
            summaries.append(CaseSummary(id: p.id, images: strayMask ? [] : [p.file], mask: strayMask ? p.file : nil, nestedMasks: [],
                                         status: worst[p.id]?.rawValue ?? "ok",
                                         dims: nil, spacing: nil, classVoxels: nil, structureChecked: false, thumbnail: nil))
        }
        cases = summaries.sorted { $0.id < $1.id }
    }

    public var errors: [Finding] { findings.filter { $0.severity == .error } }
    public var warnings: [Finding] { findings.filter { $0.severity == .warning } }
    public var infos: [Finding] { findings.filter { $0.severity == .info } }
    public var hasErrors: Bool { findings.contains { $0.severity == .error } }

    /// 0 when nothing fails, 1 when there are errors (or, with `strict`, warnings).
    public func exitCode(strict: Bool) -> Int32 {
        if hasErrors { return 1 }
        if strict && findings.contains(where: { $0.severity == .warning }) { return 1 }
        return 0
    }

    /// Findings of one code.
    public func findings(_ code: CheckCode) -> [Finding] { findings.filter { $0.code == code } }

    /// Codes present, in declaration order, with finding and case counts.
    public var byCode: [(code: CheckCode, findings: Int, cases: Int)] {
        CheckCode.allCases.compactMap { code in
            let fs = findings.filter { $0.code == code }
            guard !fs.isEmpty else { return nil }
            return (code, fs.count, Set(fs.compactMap(\.caseID)).count)
        }
    }

    public var json: JSON {
        let classes: JSON = labels.map { l in
            .array(l.classes.enumerated().map { i, c in
                var o: [(String, JSON)] = [("index", .int(i)), ("name", .string(c.name))]
                if let col = c.colour { o.append(("colour", .ints(col))) } else { o.append(("value", .int(c.value ?? i))) }
                return .object(o)
            })
        } ?? .null
        let flagged = cases.filter { $0.status == "error" || $0.status == "warning" }.count
        return .object([
            ("schema_version", .int(Self.schemaVersion)),
            ("dataset", .object([
                ("root", .string(root)),
                ("manifest", manifestPath.map { .string($0) } ?? .null),
                ("label_source", .string(labelSource.rawValue)),
                ("layout", .string(layout)),
                ("ordinal", .bool(labels?.ordinal ?? false)),
                ("classes", classes),
            ])),
            ("options", options.json),
            ("summary", .object([
                ("cases", .int(cases.count)),
                ("cases_flagged", .int(flagged)),
                ("errors", .int(errors.count)),
                ("warnings", .int(warnings.count)),
                ("info", .int(infos.count)),
                ("passed", .bool(!hasErrors)),
                ("by_code", .array(byCode.map { .object([("code", .string($0.code.rawValue)), ("severity", .string($0.code.severity.rawValue)),
                                                        ("findings", .int($0.findings)), ("cases", .int($0.cases))]) })),
            ])),
            ("findings", .array(findings.map(\.json))),
            ("cases", .array(cases.map { c in
                .object([
                    ("id", .string(c.id)),
                    ("images", .array(c.images.map { .string($0) })),
                    ("mask", c.mask.map { .string($0) } ?? .null),
                    ("nested_masks", .array(c.nestedMasks.map { .string($0) })),
                    ("status", .string(c.status)),
                    ("dims", c.dims.map { .ints($0) } ?? .null),
                    ("spacing", c.spacing.map { .numbers($0) } ?? .null),
                    ("class_voxels", c.classVoxels.map { .ints($0) } ?? .null),
                    ("structure_checked", .bool(c.structureChecked)),
                    ("thumbnail", c.thumbnail.map { .string($0) } ?? .null),
                ])
            })),
        ])
    }

    /// The human report: a summary line, then findings grouped by code (worst severity first)
    /// with counts and the worst few cases, each with its fix.
    public func text(examplesPerCode: Int = 3, strict: Bool = false) -> String {
        var lines: [String] = []
        let classText = labels.map { "\($0.classes.count) classes\($0.ordinal ? ", ordinal" : "") from \(labelSource.rawValue)" } ?? "classes inferred from the masks"
        lines.append("medprep validate \(root): \(cases.count) cases (\(layout); \(classText)\(options.scope == .errors ? "; error-level checks only" : ""))")
        let flagged = cases.filter { $0.status == "error" || $0.status == "warning" }.count
        lines.append("\(errors.count) errors, \(warnings.count) warnings, \(infos.count) info; \(flagged) of \(cases.count) cases flagged")
        for severity in Severity.allCases {
            let groups = byCode.filter { $0.code.severity == severity }
            guard !groups.isEmpty else { continue }
            lines.append("")
            lines.append(severity.rawValue.uppercased() + (severity == .info ? "" : "S"))
            for g in groups {
                let fs = findings(g.code).sorted { $0.magnitude > $1.magnitude || ($0.magnitude == $1.magnitude && ($0.caseID ?? "") < ($1.caseID ?? "")) }
                let caseText = g.cases > 0 ? ", \(g.cases) case\(g.cases == 1 ? "" : "s")" : ""
                lines.append("  \(g.code.rawValue) (\(g.findings) finding\(g.findings == 1 ? "" : "s")\(caseText)): \(g.code.title)")
                for f in fs.prefix(examplesPerCode) {
                    lines.append("    \(f.caseID.map { "[\($0)] " } ?? "")\(f.message)")
                    if let fix = f.fix { lines.append("      fix: \(fix)") }
                }
                if fs.count > examplesPerCode {
                    let rest = fs.dropFirst(examplesPerCode).compactMap(\.caseID)
                    let names = Array(Set(rest)).sorted().prefix(8).joined(separator: ", ")
                    lines.append("    … and \(fs.count - examplesPerCode) more\(names.isEmpty ? "" : " (\(names)\(Set(rest).count > 8 ? ", …" : ""))")")
                }
            }
        }
        lines.append("")
        let code = exitCode(strict: strict)
        if hasErrors {
            lines.append("FAILED: \(errors.count) error\(errors.count == 1 ? "" : "s") in \(Set(errors.compactMap(\.caseID)).count) case(s).")
        } else if code != 0 {
            lines.append("FAILED (--strict): \(warnings.count) warning\(warnings.count == 1 ? "" : "s").")
        } else {
            lines.append(warnings.isEmpty ? "OK: no errors or warnings." : "OK: no errors (\(warnings.count) warning\(warnings.count == 1 ? "" : "s")).")
        }
        return lines.joined(separator: "\n")
    }
}
