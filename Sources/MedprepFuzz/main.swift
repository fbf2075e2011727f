// medprep-fuzz: libFuzzer targets for every parser a user's file reaches (docs/fuzzing.md).
// Built only by tools/fuzz.sh (MEDPREP_FUZZ=1 in the environment adds this target to the
// package), with address sanitizer and libFuzzer's coverage instrumentation.
//
//     MEDPREP_FUZZ_TARGET=png .build/fuzz/debug/medprep-fuzz CORPUS_DIR -dict=tools/fuzz/png.dict
import CMedprep
import Foundation

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

let name = ProcessInfo.processInfo.environment["MEDPREP_FUZZ_TARGET"] ?? ""
guard let target = FuzzTargets.all[name] else {
    FileHandle.standardError.write(Data("medprep-fuzz: set MEDPREP_FUZZ_TARGET to one of \(FuzzTargets.all.keys.sorted().joined(separator: ", ")); got '\(name)'.\n".utf8))
    exit(2)
}
FuzzTargets.selected = target

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
    FuzzTargets.selected!(Array(UnsafeBufferPointer(start: data, count: count)))
    return 0
})
