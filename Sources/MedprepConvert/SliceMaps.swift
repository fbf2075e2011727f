import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset
import MedprepValidate
import MedprepInspect

/// The manifest's `maps` section applied to one final slice, written straight into the slice's
/// shard slots (`ShardBuilder.MapSlots`) by `SliceMapKernel`, the code the C ABI runs for the
/// trainer's online maps (so stored and online maps are the same floats).
package struct SliceMaps: Sendable {
    package let scales: [Int]
    package let kernel: SliceMapKernel

    package init(manifest m: Manifest, classCount: Int) {
        scales = m.maps.storesMaps ? m.maps.scales : []
        kernel = SliceMapKernel(classCount: classCount, convention: m.maps.storedSDF ? m.maps.convention : nil,
                                rrw: m.maps.storedRRW, units: m.maps.units)
    }

    /// Writes the maps of `slice` (its labels are class indices) into `slots`.
    package func fill(_ slice: ShapedSlice, height: Int, width: Int, into slots: ShardBuilder.MapSlots) throws {
        for s in scales {
            try kernel.fill(labels: slice.sample.label, height: height, width: width, spacing: slice.spacing, scale: s,
                            sdfOut: slots.sdf[s], rrwOut: slots.rrw[s])
        }
    }
}
