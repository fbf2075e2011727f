import MedprepCore
import MedprepIO
import MedprepProcessing

/// The manifest's `maps` section applied to one final slice, written straight into the slice's
/// shard slots (`ShardBuilder.MapSlots`): per scale, the labels downsampled by nearest neighbour
/// (numpy `label[::s, ::s]`) and that grid's maps for every class 0..<K.
struct SliceMaps: Sendable {
    let classCount: Int
    let scales: [Int]
    let options: DistanceMapOptions

    init(manifest m: Manifest, classCount: Int) {
        self.classCount = classCount
        scales = (m.maps.sdf || m.maps.rrw) ? m.maps.scales : []
        // A class filling the whole slice is measured as scipy does on the [H, W] array a reader
        // gets from the shard: to a virtual pixel before the first row.
        options = DistanceMapOptions(sdf: m.maps.sdf ? (SDFConvention(rawValue: m.maps.convention) ?? .boundary) : nil,
                                     rrw: m.maps.rrw, units: m.maps.units == "mm" ? .mm : .px,
                                     virtualVoxelAxis: .last, threads: 1)
    }

    /// Writes the maps of `slice` (its labels are class indices) into `slots`.
    func fill(_ slice: ShapedSlice, height: Int, width: Int, into slots: ShardBuilder.MapSlots) throws {
        let grid = try MapGrid(dims: [width, height], spacing: slice.spacing)
        for s in scales {
            let (labels, g) = try DistanceMaps.downsampleNearest(labels: slice.sample.label, grid: grid, factor: s)
            try labels.withUnsafeBufferPointer {
                try DistanceMaps.compute(classIndices: $0, K: classCount, grid: g, options: options,
                                         sdfOut: slots.sdf[s], rrwOut: slots.rrw[s])
            }
        }
    }
}
