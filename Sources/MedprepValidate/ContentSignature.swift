import MedprepCore
import MedprepProcessing
import MedprepDataset

/// What an image looks like once convert has made it canonical: its grid in the manifest's
/// orientation and the means of 16 x 16 x 8 blocks of that grid, per channel. Two cases whose
/// block means correlate to within 1e-6 (and whose canonical grids agree) hold the same image
/// even when one is stored LPS and the other RAS, or as int16 with another scl_slope, or in
/// other intensity units: copies that convert turns into the same shards, and that leak between
/// folds. (Pearson correlation ignores any positive scale and offset of the intensities, so the
/// stored values serve as well as the scaled ones.)
package struct ContentSignature: Sendable, Equatable {
    /// Canonical dims and spacing (x, y, z of the reoriented grid), channels.
    package var dims: [Int]
    package var spacing: [Double]
    package var channels: Int
    /// Per channel, the block means in block order.
    package var blocks: [[Double]]

    package static let blockCounts = [16, 16, 8]
    /// Correlation above 1 - this is the same image.
    package static let tolerance = 1e-6

    /// nil when the image has no usable grid (frames, or an affine that cannot be reoriented).
    package static func of(_ image: MedicalImage, orientation: String) -> ContentSignature? {
        guard image.frameCount == 1 else { return nil }
        let sd = image.spatialDims
        // Where each stored axis goes in the canonical grid (identity for 2D images).
        var outAxis = [0, 1, 2], flip = [false, false, false]
        if image.affineSource != .image2D {
            guard let t = try? AxisReorientation.between(affine: image.affine, target: orientation) else { return nil }
            outAxis = t.outputAxis
            flip = t.flipped
        }
        var dims = [1, 1, 1], spacing = [1.0, 1.0, 1.0]
        for a in 0..<3 {
            dims[outAxis[a]] = sd[a]
            spacing[outAxis[a]] = a < image.spacing.count ? image.spacing[a] : 1
        }
        let nb = (0..<3).map { min(blockCounts[$0], dims[$0]) }
        let blockCount = nb.reduce(1, *)
        let C = max(1, image.channels)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: blockCount), count: C)
        var counts = [Int](repeating: 0, count: blockCount)
        // Per stored axis and index: that index's contribution to the canonical block number.
        var contribution: [[Int]] = []
        let strides = [1, nb[0], nb[0] * nb[1]]
        for a in 0..<3 {
            let o = outAxis[a]
            contribution.append((0..<sd[a]).map { i in
                let c = flip[a] ? sd[a] - 1 - i : i
                return (c * nb[o] / dims[o]) * strides[o]
            })
        }
        // Stored values in storage order (x fastest, channels interleaved), streamed in chunks.
        let perRow = sd[0] * C
        var i = 0
        image.voxels.withDoubles { chunk in
            for d in chunk {
                let voxel = i / C, c = i % C
                let x = voxel % sd[0], y = (i / perRow) % sd[1], z = i / (perRow * sd[1])
                let b = contribution[0][x] + contribution[1][y] + contribution[2][z]
                if c == 0 { counts[b] += 1 }
                if d.isFinite { sums[c][b] += d }
                i += 1
            }
        }
        let means = sums.map { s in zip(s, counts).map { $0 / Double(max(1, $1)) } }
        return ContentSignature(dims: dims, spacing: spacing, channels: C, blocks: means)
    }

    /// The same image: same canonical grid (spacing to 1e-3 relative) and every channel's block
    /// means correlated to within `tolerance` (or both constant and equal).
    package func matches(_ o: ContentSignature) -> Bool {
        guard dims == o.dims, channels == o.channels,
              zip(spacing, o.spacing).allSatisfy({ abs($0 - $1) <= 1e-3 * max($0, $1) }) else { return false }
        return zip(blocks, o.blocks).allSatisfy { a, b in
            guard let r = Self.correlation(a, b) else { return a == b }
            return r >= 1 - Self.tolerance
        }
    }

    /// Pearson correlation; nil when either side is constant.
    package static func correlation(_ a: [Double], _ b: [Double]) -> Double? {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb)
        }
        guard saa > 0, sbb > 0 else { return nil }
        return sab / (saa * sbb).squareRoot()
    }
}
