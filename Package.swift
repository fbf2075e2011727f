// swift-tools-version:6.0
import PackageDescription

/// medprep: medical images to training-ready shards.
/// C libraries (zlib, libdeflate, libpng, libjpeg-turbo) are reached only through the
/// `CMedprep` shim, which traps their longjmp/exit error paths and returns status codes.
let package = Package(
    name: "medprep",
    products: [
        .executable(name: "medprep", targets: ["medprep"]),
        .library(name: "MedprepIO", targets: ["MedprepIO"]),
        .library(name: "MedprepProcessing", targets: ["MedprepProcessing"]),
        // libmedprep_maps.so: the distance-map kernel behind a C ABI (docs/maps-library.md), for
        // the trainer's online maps.
        .library(name: "medprep_maps", type: .dynamic, targets: ["MedprepMaps"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .target(
            name: "CMedprep",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [
                .linkedLibrary("z"), .linkedLibrary("deflate"),
                .linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("crypto"),
            ]
        ),
        .target(name: "MedprepCore", dependencies: ["CMedprep"]),
        .target(name: "MedprepIO", dependencies: ["MedprepCore", "CMedprep"]),
        .target(
            name: "MedprepProcessing", dependencies: ["MedprepCore"],
            // Float.squareRoot() goes through a C shim; without errno it becomes a vector sqrt in
            // the distance-map loops.
            swiftSettings: [.unsafeFlags(["-Xcc", "-fno-math-errno"])]
        ),
        .target(name: "MedprepMaps", dependencies: ["MedprepCore", "MedprepProcessing"]),
        // The dataset model (manifest, discovery, resolver, mask decoding, folds, slice drawing),
        // then one target per job on it: the compiler keeps them apart (no cycles; Convert
        // builds on Validate, which it runs first, and on Inspect, whose verifier --resume uses).
        .target(name: "MedprepDataset", dependencies: ["MedprepCore", "MedprepIO", "MedprepProcessing", "Yams"]),
        .target(name: "MedprepValidate", dependencies: ["MedprepDataset", "MedprepCore", "MedprepIO", "MedprepProcessing"]),
        .target(name: "MedprepInspect", dependencies: ["MedprepDataset", "MedprepCore", "MedprepIO", "MedprepProcessing"]),
        .target(name: "MedprepConvert",
                dependencies: ["MedprepDataset", "MedprepValidate", "MedprepInspect", "MedprepCore", "MedprepIO", "MedprepProcessing"]),
        .target(name: "MedprepSynth", dependencies: ["MedprepDataset", "MedprepCore", "MedprepIO", "MedprepProcessing"]),
        .target(
            name: "MedprepCommands",
            dependencies: [
                "MedprepCore", "MedprepIO", "MedprepProcessing", "MedprepDataset", "MedprepValidate", "MedprepInspect",
                "MedprepConvert", "MedprepSynth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "medprep", dependencies: ["MedprepCommands"]),
        .testTarget(name: "MedprepCoreTests", dependencies: ["MedprepCore"]),
        .testTarget(name: "MedprepIOTests", dependencies: ["MedprepIO", "MedprepCore"]),
        .testTarget(name: "MedprepProcessingTests", dependencies: ["MedprepProcessing", "MedprepCore"]),
        .testTarget(name: "MedprepMapsTests", dependencies: ["MedprepMaps", "MedprepProcessing", "MedprepCore"]),
        .testTarget(name: "MedprepDatasetTests",
                    dependencies: ["MedprepDataset", "MedprepValidate", "MedprepInspect", "MedprepConvert", "MedprepSynth",
                                   "MedprepIO", "MedprepCore"]),
        .testTarget(name: "MedprepCommandsTests", dependencies: ["MedprepCommands", "MedprepIO", "MedprepCore"]),
    ],
    swiftLanguageModes: [.v6]
)

// medprep-fuzz (libFuzzer targets, docs/fuzzing.md) exists only in the builds tools/fuzz/run.py makes:
// it needs the sanitizer flags and libFuzzer's driver that script passes, and @testable imports.
if Context.environment["MEDPREP_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "medprep-fuzz",
        dependencies: ["MedprepCore", "MedprepIO", "MedprepDataset", "MedprepConvert", "MedprepInspect", "CMedprep"],
        path: "Sources/MedprepFuzz"))
}
