import MedprepCore
import MedprepDataset

/// How bad a finding is. `error` stops `medprep convert` (unless overridden) and makes
/// `medprep validate` exit 1; `warning` does so only with `--strict`; `info` never does.
public enum Severity: String, Sendable, Codable, CaseIterable, Comparable {
    case error, warning, info

    /// error < warning < info, so sorting puts the worst first.
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    package var rank: Int { switch self { case .error: 0; case .warning: 1; case .info: 2 } }
}

/// Every check medprep validate runs, by its stable code. The raw value is the code written in
/// reports; docs/validate.md describes each (what, severity, why, fix). Codes are never renamed.
public enum CheckCode: String, Sendable, Codable, CaseIterable {
    // Dataset and pairing
    case noCases = "no-cases"
    case imageWithoutMask = "image-without-mask"
    case maskWithoutImage = "mask-without-image"
    case imageChannelMissing = "image-channel-missing"
    case unreadableFile = "unreadable-file"
    case labelsInferred = "labels-inferred"
    // Geometry
    case shapeMismatch = "shape-mismatch"
    case spacingMismatch = "spacing-mismatch"
    case originMismatch = "origin-mismatch"
    case directionMismatch = "direction-mismatch"
    case qformSformMismatch = "qform-sform-mismatch"
    case directionNonOrthonormal = "direction-non-orthonormal"
    case slicePositionsDuplicated = "slice-positions-duplicated"
    case slicePositionsIrregular = "slice-positions-irregular"
    // Mask values
    case labelsUndeclared = "labels-undeclared"
    case labelsNonInteger = "labels-non-integer"
    case labelsFloatType = "labels-float-type"
    case maskScaled = "mask-scaled"
    case mask0255 = "mask-0-255"
    case maskAntialiased = "mask-antialiased"
    case maskJPEG = "mask-jpeg"
    case maskChannels = "mask-channels"
    // Images
    case imageNonFinite = "image-nonfinite"
    case intensityOutlier = "intensity-outlier"
    case duplicateCase = "duplicate-case"
    // Mask structure
    case maskEmpty = "mask-empty"
    case classAbsent = "class-absent"
    case classMissingDataset = "class-missing-dataset"
    case smallComponent = "small-component"
    case ordinalContact = "ordinal-contact"
    case ordinalNesting = "ordinal-nesting"
    case ordinalHole = "ordinal-hole"

    /// The severity findings of this code carry.
    public var severity: Severity {
        switch self {
        case .noCases, .imageWithoutMask, .imageChannelMissing, .unreadableFile, .shapeMismatch, .spacingMismatch,
             .originMismatch, .directionMismatch, .slicePositionsDuplicated, .labelsUndeclared, .labelsNonInteger,
             .mask0255, .maskAntialiased, .maskChannels, .imageNonFinite:
            return .error
        case .maskWithoutImage, .qformSformMismatch, .directionNonOrthonormal, .slicePositionsIrregular,
             .labelsFloatType, .maskScaled, .maskJPEG, .intensityOutlier, .duplicateCase, .maskEmpty,
             .classMissingDataset, .smallComponent, .ordinalContact, .ordinalNesting, .ordinalHole:
            return .warning
        case .labelsInferred, .classAbsent:
            return .info
        }
    }

    /// One line: what the check looks for (used in the human report's group headings).
    public var title: String {
        switch self {
        case .noCases: "no cases found"
        case .imageWithoutMask: "image without mask"
        case .maskWithoutImage: "mask without image"
        case .imageChannelMissing: "image channel file missing"
        case .unreadableFile: "file cannot be read"
        case .labelsInferred: "classes inferred from mask values"
        case .shapeMismatch: "image and mask grids differ in size"
        case .spacingMismatch: "image and mask voxel spacing differ"
        case .originMismatch: "image and mask origins differ"
        case .directionMismatch: "image and mask axis directions differ"
        case .qformSformMismatch: "qform and sform disagree within a file"
        case .directionNonOrthonormal: "non-orthonormal direction (sheared affine)"
        case .slicePositionsDuplicated: "slices share one position (degenerate affine)"
        case .slicePositionsIrregular: "slice positions disagree with the stated spacing"
        case .labelsUndeclared: "mask values not declared as classes"
        case .labelsNonInteger: "non-integer mask values"
        case .labelsFloatType: "mask stored as floating point"
        case .maskScaled: "scl_slope/scl_inter set on a mask"
        case .mask0255: "0/255 mask"
        case .maskAntialiased: "grey values along mask edges (anti-aliasing)"
        case .maskJPEG: "mask stored as JPEG (lossy)"
        case .maskChannels: "mask channel count does not fit the class declaration"
        case .imageNonFinite: "NaN or Inf in image"
        case .intensityOutlier: "intensity outlier against the dataset"
        case .duplicateCase: "duplicate image content"
        case .maskEmpty: "mask has only background"
        case .classAbsent: "declared class absent from a case"
        case .classMissingDataset: "declared class absent from every case"
        case .smallComponent: "connected components below the size limit"
        case .ordinalContact: "contact between classes more than one step apart"
        case .ordinalNesting: "ordinal layer not enclosed by the layer below"
        case .ordinalHole: "hole inside an ordinal layer"
        }
    }
}

/// One problem found: stable code, severity, where, a one-sentence message with the values
/// involved, and a suggested fix where one exists. `details` carries the numbers (JSON).
public struct Finding: Sendable {
    public var code: CheckCode
    public var severity: Severity
    /// Case id; nil for dataset-wide findings.
    public var caseID: String?
    /// The file the finding is about, when there is one.
    public var file: String?
    public var message: String
    public var fix: String?
    public var details: [(String, JSON)]
    /// How bad, for ranking the worst cases of a code (voxel count, mm, degrees...).
    public var magnitude: Double

    public init(_ code: CheckCode, case caseID: String?, file: String?, _ message: String, fix: String? = nil,
                details: [(String, JSON)] = [], magnitude: Double = 0) {
        self.code = code
        self.severity = code.severity
        self.caseID = caseID
        self.file = file
        self.message = message
        self.fix = fix
        self.details = details
        self.magnitude = magnitude
    }

    public var json: JSON {
        var o: [(String, JSON)] = [
            ("code", .string(code.rawValue)),
            ("severity", .string(severity.rawValue)),
            ("case", caseID.map { .string($0) } ?? .null),
            ("file", file.map { .string($0) } ?? .null),
            ("message", .string(message)),
            ("fix", fix.map { .string($0) } ?? .null),
        ]
        o.append(("details", .object(details)))
        return .object(o)
    }
}

/// The one table of geometry tolerances: validate reports a difference above them as an error
/// (or, within one file, a warning), and convert refuses exactly those files, with the same check
/// (`GeometryChecks.pairChecks`). Defaults are documented in docs/validate.md.
public struct GeometryTolerances: Sendable, Equatable {
    /// Relative difference of voxel spacing between image and mask (or channel), and of the voxel
    /// sizes of a file's qform and sform.
    public var spacingRelative: Double = 1e-3
    /// Origin distance (mm) between image and mask (or channel), and between qform and sform.
    public var originMM: Double = 0.01
    /// Angle (degrees) between corresponding axis directions; also the shear limit.
    public var directionDegrees: Double = 0.1

    public init() {}
}

/// Tunable thresholds and what to run. Defaults are documented in docs/validate.md.
public struct ValidationOptions: Sendable {
    public enum Scope: String, Sendable, CaseIterable {
        /// Every check.
        case all
        /// Only error-level checks: headers of every file, masks in full, images only when they
        /// are floating point (integer images cannot hold NaN). What `medprep convert` runs first.
        case errors
    }
    public var scope: Scope = .all
    /// 3D connectivity for components: 6 (faces) or 26 (faces, edges, corners). 2D uses 4 or 8.
    public var connectivity: Int = 26
    /// Components smaller than this (voxels, or pixels in 2D) are reported.
    public var minComponentSize: Int = 10
    /// How far an image, its channels and its mask may be apart and still share one grid.
    public var tolerances = GeometryTolerances()
    /// A case's mean intensity is an outlier when it is more than this many typical (median
    /// within-case) standard deviations from the dataset's median mean.
    public var outlierZ: Double = 4
    /// ... or when its standard deviation is more than this factor above or below the median.
    public var outlierSpreadRatio: Double = 5
    /// Fewest cases for the intensity outlier check to run.
    public var outlierMinCases: Int = 5
    /// Share of undeclared mask pixels that must lie on class edges to call them anti-aliasing.
    public var antialiasEdgeShare: Double = 0.9
    /// Write one PNG per flagged case here.
    public var thumbnailsDirectory: String? = nil

    public init() {}

    public var json: JSON {
        .object([
            ("scope", .string(scope.rawValue)),
            ("connectivity", .int(connectivity)),
            ("min_component_size", .int(minComponentSize)),
            ("spacing_tolerance", .number(tolerances.spacingRelative)),
            ("origin_tolerance_mm", .number(tolerances.originMM)),
            ("direction_tolerance_degrees", .number(tolerances.directionDegrees)),
            ("outlier_z", .number(outlierZ)),
            ("outlier_spread_ratio", .number(outlierSpreadRatio)),
            ("outlier_min_cases", .int(outlierMinCases)),
            ("antialias_edge_share", .number(antialiasEdgeShare)),
        ])
    }
}
