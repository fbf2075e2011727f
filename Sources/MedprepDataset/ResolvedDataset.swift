import Foundation
import MedprepCore
import MedprepIO

/// A dataset folder resolved once, the same way for `medprep validate` and `medprep convert`:
/// which manifest (if any), the layout, the cases, where the classes come from. Convert runs its
/// error-level validation on the very value it converts, so the two cannot disagree on what the
/// dataset is.
public struct ResolvedDataset: Sendable {
    public enum LabelSource: String, Sendable {
        case manifest
        case datasetJSON = "dataset.json"
        /// No declaration anywhere: every integer value found is taken as a class.
        case inferred
    }

    public var root: String
    /// The manifest file's contents; nil when none was found (nnU-Net defaults or a guessed layout).
    public var manifest: Manifest?
    public var manifestPath: String?
    /// nil when classes are inferred from the masks.
    public var labels: LabelSpec?
    public var labelSource: LabelSource
    /// "nnunet", "templates", or "guessed '<image template>' + '<mask template>'".
    public var layout: String
    public var cases: [CaseFiles]
    public var problems: [(id: String, file: String, message: String)]

    /// The manifest the dataset is processed with: the file's, or the defaults.
    public var effectiveManifest: Manifest {
        manifest ?? Manifest(name: (root as NSString).lastPathComponent, layout: layout == "nnunet" ? .nnunet : nil)
    }

    public var geometry: GeometrySpec { effectiveManifest.geometry }

    /// File names looked for in the dataset folder, in this order, when no manifest is given.
    public static let manifestNames = ["manifest.yaml", "manifest.yml", "manifest.json"]

    /// The manifest file used for `root`: `given`, else the first of `manifestNames` present.
    public static func manifestPath(root: String, given: String?) -> String? {
        given ?? manifestNames.map { root + "/" + $0 }.first(where: FileIO.exists)
    }

    /// The dataset in `root`: the manifest `manifestPath` if given, else one of `manifestNames`
    /// in the folder, else nnU-Net's `dataset.json`, else the usual folder layouts
    /// (imagesTr/labelsTr, images/masks, images/labels) with classes inferred.
    public static func resolve(root given: String, manifestPath: String? = nil) throws -> ResolvedDataset {
        let root = trimmed(given)
        if let path = Self.manifestPath(root: root, given: manifestPath) {
            return try resolve(root: root, manifest: try Manifest.load(path: path), manifestPath: path)
        }
        if FileIO.exists(root + "/dataset.json") {
            let nn = try NNUNetDataset.load(root: root)
            let d = try CaseDiscovery.discover(root: root, spec: nn.caseSpec)
            return ResolvedDataset(root: root, manifest: nil, manifestPath: nil, labels: nn.labels, labelSource: .datasetJSON,
                                   layout: "nnunet", cases: d.cases, problems: d.problems)
        }
        let guesses: [(String, String)] = [
            ("imagesTr/{id}_0000.*", "labelsTr/{id}.*"),
            ("images/{id}.*", "masks/{id}.*"),
            ("images/{id}.*", "labels/{id}.*"),
        ]
        for (img, msk) in guesses {
            let d = try CaseDiscovery.discover(root: root, spec: CaseSpec(images: [img], mask: msk))
            if !d.cases.isEmpty || !d.problems.isEmpty {
                return ResolvedDataset(root: root, manifest: nil, manifestPath: nil, labels: nil, labelSource: .inferred,
                                       layout: "guessed '\(img)' + '\(msk)'", cases: d.cases, problems: d.problems)
            }
        }
        throw MedprepError(.invalidArgument, path: root,
                           "no manifest (\(manifestNames.joined(separator: ", "))), no dataset.json and no imagesTr/labelsTr, images/masks or images/labels folders; pass --manifest to say where the images and masks are, or run 'medprep manifest init \(root)'.")
    }

    /// The dataset described by a manifest (nnU-Net layout, or templates).
    public static func resolve(root given: String, manifest: Manifest, manifestPath: String? = nil) throws -> ResolvedDataset {
        let root = trimmed(given)
        let nnunet = manifest.layout == .nnunet || (manifest.layout == nil && manifest.cases == nil && FileIO.exists(root + "/dataset.json"))
        if nnunet {
            let nn = try NNUNetDataset.load(root: root)
            let d = try CaseDiscovery.discover(root: root, spec: nn.caseSpec)
            return ResolvedDataset(root: root, manifest: manifest, manifestPath: manifestPath, labels: manifest.labels ?? nn.labels,
                                   labelSource: manifest.labels != nil ? .manifest : .datasetJSON, layout: "nnunet",
                                   cases: d.cases, problems: d.problems)
        }
        guard let spec = manifest.cases else {
            throw MedprepError(.invalidArgument, path: manifestPath ?? root,
                               "the manifest has no 'cases' templates and the folder has no dataset.json.")
        }
        let d = try CaseDiscovery.discover(root: root, spec: spec)
        return ResolvedDataset(root: root, manifest: manifest, manifestPath: manifestPath, labels: manifest.labels,
                               labelSource: manifest.labels != nil ? .manifest : .inferred, layout: "templates",
                               cases: d.cases, problems: d.problems)
    }

    /// What convert needs beyond validate: declared classes. Validate infers them from the mask
    /// values; a conversion that did so would give class indices that change with the data.
    public func conversionLabels() throws -> LabelSpec {
        if let labels { return labels }
        if manifest != nil {
            throw MedprepError(.invalidArgument, path: manifestPath ?? root,
                               "manifest key 'labels' is required (classes with their mask values).")
        }
        throw MedprepError(.fileNotFound, path: root,
                           "no manifest found (\(Self.manifestNames.joined(separator: ", "))) and no dataset.json: classes must be declared to convert (give --manifest, or run 'medprep manifest init \(root)').")
    }

    package static func trimmed(_ root: String) -> String {
        root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }
}
