import MedprepCore
import MedprepProcessing

// The C ABI of libmedprep_maps (docs/maps-library.md): medprep's distance-map kernel for
// programs that are not Swift, the trainer's Python binding above all. Every entry point returns
// a status (0 = success); bad arguments never trap: sizes, class counts, label values, spacing
// and names are checked first and a one-sentence message goes to the caller's buffer.

/// The version of this ABI; a binding refuses a library whose version it does not know.
@_cdecl("medprep_maps_abi_version")
public func medprep_maps_abi_version() -> Int32 { MapsABI.version }

/// Signed distance and/or RRW maps of `n` label planes, exactly as `medprep convert` stores them.
///
/// - labels: n·height·width class indices (0 ..< classes), row-major [n, height, width].
/// - spacing: n·2 doubles, (row mm, column mm) per plane; NULL for 1 mm. Used only with units "mm".
/// - convention: "boundary", "plain" or "itk" (the SDF convention; ignored when sdf_out is NULL).
/// - units: "px" or "mm".
/// - scale: s >= 1, the maps of label[::s, ::s] (deep supervision).
/// - threads: planes are spread over this many threads, each plane computed on one, so the
///   output does not depend on it.
/// - sdf_out, rrw_out: n·classes·ceil(height/s)·ceil(width/s) floats each, [n, classes, h, w];
///   NULL for a map not wanted (not both).
/// - message, message_length: a buffer for a NUL-terminated message when the status is not 0.
///
/// Returns 0, or 1 for a bad argument (the message says which and why).
@_cdecl("medprep_slice_maps")
public func medprep_slice_maps(
    _ labels: UnsafePointer<UInt16>?, _ n: Int64, _ height: Int64, _ width: Int64, _ classes: Int32,
    _ spacing: UnsafePointer<Double>?, _ convention: UnsafePointer<CChar>?, _ units: UnsafePointer<CChar>?,
    _ scale: Int32, _ threads: Int32, _ sdfOut: UnsafeMutablePointer<Float>?, _ rrwOut: UnsafeMutablePointer<Float>?,
    _ message: UnsafeMutablePointer<CChar>?, _ messageLength: Int64
) -> Int32 {
    do {
        try MapsABI.sliceMaps(labels: labels, n: Int(n), height: Int(height), width: Int(width), classes: Int(classes),
                              spacing: spacing, convention: convention.map { String(cString: $0) },
                              units: units.map { String(cString: $0) }, scale: Int(scale), threads: Int(threads),
                              sdfOut: sdfOut, rrwOut: rrwOut)
        return 0
    } catch {
        MapsABI.write((error as? MedprepError)?.message ?? "\(error)", to: message, capacity: Int(messageLength))
        return 1
    }
}

/// Tells glibc to keep freed memory in the process (as `medprep convert` does): no separate
/// mapping for large blocks, no trimming. A caller that allocates fresh output arrays for every
/// sample (K·H·W floats each) then reuses pages instead of faulting and zeroing new ones: for
/// 256² slices with 4 classes, 3.9 → 1.8 ms a sample. RSS no longer shrinks below its peak.
/// Returns 1 when glibc took the settings.
@_cdecl("medprep_maps_keep_freed_memory")
public func medprep_maps_keep_freed_memory() -> Int32 { AllocatorTuning.keepFreedMemory() ? 1 : 0 }
