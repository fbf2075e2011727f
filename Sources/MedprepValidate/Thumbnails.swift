import Foundation
import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset

/// `--thumbnails DIR`: one PNG per flagged case, drawn like `medprep inspect --preview` (the same
/// window, palette and outlines, `SliceDrawing`): a slice of the first image windowed to its
/// 1st-99th percentile, the mask's classes at 40% with opaque edges, and the offending voxels
/// outlined in magenta, under a caption naming the case, the findings and the slice. The slice is
/// shown as convert will cut it (reoriented to `geometry.orientation`, rows and columns as the
/// shard's [H, W]), so an LPS case looks like an RAS one; it is the slice with the most
/// offending voxels (else the most foreground, else the middle), enlarged 2-8x so single voxels
/// show.
package enum Thumbnails {
    package static let markColour: RGBCanvas.RGB = (255, 0, 255)

    package static func fileName(for id: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let s = String(id.map { allowed.contains($0) ? $0 : "_" })
        return (s.isEmpty || s.hasPrefix(".") ? "_" + s : s) + ".png"
    }

    /// Storage voxels seen through the canonical grid: what convert's reorientation does to them.
    package struct CanonicalView {
        package let grid: Grid
        /// For each stored axis: the canonical axis it becomes, and whether it is reversed.
        package let outAxis: [Int], flipped: [Bool]
        /// Canonical axes: slice, rows, columns.
        package let slice: Int, rows: Int, columns: Int
        package let dims: [Int]

        package init(grid: Grid, affine: Affine4?, geometry: GeometrySpec) {
            self.grid = grid
            let t = grid.is2D ? nil : affine.flatMap { try? AxisReorientation.between(affine: $0, target: geometry.orientation) }
            outAxis = t?.outputAxis ?? [0, 1, 2]
            flipped = t?.flipped ?? [false, false, false]
            let axis: SliceAxis = grid.is2D ? .z : geometry.slicing
            slice = axis.index
            (rows, columns) = Slicing.planeAxes(axis)
            let stored = [grid.nx, grid.ny, grid.nz]
            var d = [1, 1, 1]
            for a in 0..<3 { d[outAxis[a]] = stored[a] }
            dims = d
        }

        package var height: Int { dims[rows] }
        package var width: Int { dims[columns] }
        package var depth: Int { dims[slice] }

        package func canonical(_ voxel: Int) -> [Int] {
            let s = grid.coords(voxel), stored = [grid.nx, grid.ny, grid.nz]
            var c = [0, 0, 0]
            for a in 0..<3 { c[outAxis[a]] = flipped[a] ? stored[a] - 1 - s[a] : s[a] }
            return c
        }

        /// The stored voxel at row `r`, column `q` of canonical slice `k`.
        package func voxel(row r: Int, column q: Int, slice k: Int) -> Int {
            var c = [0, 0, 0]
            c[rows] = r; c[columns] = q; c[slice] = k
            let stored = [grid.nx, grid.ny, grid.nz]
            var s = [0, 0, 0]
            for a in 0..<3 { s[a] = flipped[a] ? stored[a] - 1 - c[outAxis[a]] : c[outAxis[a]] }
            return (s[2] * grid.ny + s[1]) * grid.nx + s[0]
        }
    }

    /// Renders the thumbnail. `affine`: the stored grid's (nil for 2D); `caption`: the findings.
    package static func render(image: MedicalImage?, codes: [UInt16]?, grid: Grid, marks allMarks: [Int32], affine: Affine4?,
                       geometry: GeometrySpec, caseID: String, caption: String) -> RGBCanvas {
        let view = CanonicalView(grid: grid, affine: affine, geometry: geometry)
        let marks = allMarks.filter { $0 >= 0 && Int($0) < grid.count }
        let (h, w, depth) = (view.height, view.width, view.depth)
        // Slice: most marks, else most foreground, else the middle.
        var slice = depth / 2
        func busiest(_ voxels: [Int]) -> Int? {
            var hist = [Int](repeating: 0, count: depth)
            for v in voxels { hist[view.canonical(v)[view.slice]] += 1 }
            guard let best = hist.indices.max(by: { hist[$0] < hist[$1] || (hist[$0] == hist[$1] && $0 > $1) }), hist[best] > 0 else { return nil }
            return best
        }
        if !marks.isEmpty {
            slice = busiest(marks.map(Int.init)) ?? slice
        } else if let codes, codes.count == grid.count {
            slice = busiest(codes.indices.filter { codes[$0] != 0 }) ?? slice
        }
        // The slice as the preview renderer takes it: image [C, H, W], label and marks [H, W].
        let C = image.map { $0.channels >= 3 && $0.voxels.type == .uint8 ? 3 : 1 } ?? 1
        var pixels = [Float](repeating: .nan, count: C * h * w)
        if let image, image.spatialDims == [grid.nx, grid.ny, grid.nz] {
            let ch = image.channels
            for r in 0..<h { for q in 0..<w {
                let v = view.voxel(row: r, column: q, slice: slice)
                for k in 0..<C { pixels[k * h * w + r * w + q] = Float(image.scaled(image.voxels.double(at: v * ch + k))) }
            } }
        }
        var label = [Int](repeating: 0, count: h * w)
        if let codes, codes.count == grid.count {
            for r in 0..<h { for q in 0..<w { label[r * w + q] = Int(codes[view.voxel(row: r, column: q, slice: slice)]) } }
        }
        var marked = [Int](repeating: 0, count: h * w)
        var onSlice = 0
        for m in marks {
            let c = view.canonical(Int(m))
            guard c[view.slice] == slice, marked[c[view.rows] * w + c[view.columns]] == 0 else { continue }
            marked[c[view.rows] * w + c[view.columns]] = 1
            onSlice += 1
        }
        // Enlarged 2-8x (to about 512 pixels on the long side).
        let f = max(2, min(8, 512 / max(1, max(w, h))))
        let g = SliceDrawing.Geometry(c: C, h: h, w: w, dh: h * f, dw: w * f, mh: h, mw: w, columns: 1)
        let finite = pixels.filter(\.isFinite).sorted()
        let lo = SliceDrawing.percentile(sorted: finite, 1)
        var hi = SliceDrawing.percentile(sorted: finite, 99)
        if !(hi > lo) { hi = lo + 1 }
        let axisName = ["x", "y", "z"][view.slice]
        let lines = [
            "\(caseID): \(caption)",
            grid.is2D ? "2D image, \(w)x\(h)" : "slice \(slice + 1)/\(depth) along \(axisName) (\(geometry.orientation)), \(w)x\(h), as convert cuts it",
            marks.isEmpty ? "no voxel-level marks" : "magenta: \(onSlice) of \(marks.count) offending voxels on this slice",
        ]
        let m = SliceDrawing.margin, lineH = SliceDrawing.lineHeight
        let textW = lines.map { BitmapFont.width($0, scale: 2) }.max() ?? 0
        var cv = RGBCanvas(width: max(g.dw, textW) + 2 * m, height: g.dh + lines.count * lineH + 2 * m + 6, fill: PreviewColours.background)
        for (i, line) in lines.enumerated() {
            cv.text(line, x: m, y: m + i * lineH, scale: 2, i == 0 ? PreviewColours.text : PreviewColours.dimText)
        }
        let (x0, y0) = (m, m + lines.count * lineH + 6)
        SliceDrawing.drawImage(&cv, pixels, g: g, lo: lo, hi: hi, x: x0, y: y0)
        SliceDrawing.drawLabelOverlay(&cv, label, g: g, x: x0, y: y0)
        SliceDrawing.drawOutline(&cv, marked, of: 1, g: g, x: x0, y: y0, markColour)
        return cv
    }

    /// Renders and writes `DIR/<case>.png`; returns the path.
    package static func write(caseID: String, directory: String, image: MedicalImage?, codes: [UInt16]?, grid: Grid?,
                      marks: [Int32], affine: Affine4?, geometry: GeometrySpec, findings: [Finding]) throws -> String? {
        let g: Grid
        if let grid { g = grid } else if let image { let sd = image.spatialDims; g = Grid(nx: sd[0], ny: sd[1], nz: sd[2]) } else { return nil }
        var seen = Set<String>()
        let caption = findings.filter { $0.severity != .info }.map(\.code.rawValue).filter { seen.insert($0).inserted }.joined(separator: ", ")
        let thumb = render(image: image, codes: codes, grid: g, marks: marks, affine: affine ?? image?.affine, geometry: geometry,
                           caseID: caseID, caption: caption.isEmpty ? "flagged" : caption)
        let path = directory + "/" + fileName(for: caseID)
        try thumb.writePNG(to: path)
        return path
    }
}
