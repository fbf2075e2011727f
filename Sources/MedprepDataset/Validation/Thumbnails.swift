import Foundation
import MedprepCore
import MedprepIO

/// `--thumbnails DIR`: one PNG per flagged case: a slice of the first image (grey, windowed to
/// its 1st-99th percentile), the mask's classes as a translucent overlay, and the offending
/// voxels in solid magenta. The slice is the one with the most offending voxels along the
/// slice axis (for 2D, the image). Slices are shown in storage order: columns = the first
/// in-plane voxel axis, rows = the second, (0, 0) top-left, as docs/conventions.md.
enum Thumbnails {
    static let classColours: [(Double, Double, Double)] = [
        (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (70, 240, 240), (145, 30, 180), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
    ]
    static let markColour: [UInt8] = [255, 0, 255]

    static func fileName(for id: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let s = String(id.map { allowed.contains($0) ? $0 : "_" })
        return (s.isEmpty || s.hasPrefix(".") ? "_" + s : s) + ".png"
    }

    /// Renders the thumbnail (RGB uint8 2D image).
    static func render(image: MedicalImage?, codes: [UInt16]?, grid: Grid, marks allMarks: [Int32], sliceAxis sa: Int) -> MedicalImage {
        let marks = allMarks.filter { $0 >= 0 && Int($0) < grid.count }
        let axes = [0, 1, 2].filter { $0 != sa }
        let (ua, va) = (axes[0], axes[1])
        let w = grid.size(axis: ua), h = grid.size(axis: va)
        let depth = grid.size(axis: sa)
        // Slice: most marks, else most foreground, else the middle.
        var slice = depth / 2
        if !marks.isEmpty {
            var hist = [Int](repeating: 0, count: depth)
            for m in marks { hist[grid.coords(Int(m))[sa]] += 1 }
            slice = hist.indices.max { hist[$0] < hist[$1] || (hist[$0] == hist[$1] && $0 > $1) } ?? slice
        } else if let codes {
            var hist = [Int](repeating: 0, count: depth)
            for v in 0..<min(codes.count, grid.count) where codes[v] != 0 { hist[grid.coords(v)[sa]] += 1 }
            if let best = hist.indices.max(by: { hist[$0] < hist[$1] || (hist[$0] == hist[$1] && $0 > $1) }), hist[best] > 0 { slice = best }
        }
        func voxel(_ u: Int, _ v: Int) -> Int {
            var c = [0, 0, 0]
            c[ua] = u; c[va] = v; c[sa] = slice
            return (c[2] * grid.ny + c[1]) * grid.nx + c[0]
        }
        // Base layer: grey image (or RGB for 2D colour images), windowed per slice.
        var rgb = [Double](repeating: 0, count: w * h * 3)
        if let image, image.spatialDims == [grid.nx, grid.ny, grid.nz] {
            let ch = image.channels
            let colour = ch >= 3 && image.voxels.type == .uint8
            var values = [Double](repeating: 0, count: w * h)
            for y in 0..<h { for x in 0..<w { values[y * w + x] = image.scaled(image.voxels.double(at: voxel(x, y) * ch)) } }
            let finite = values.filter(\.isFinite).sorted()
            let lo = finite.isEmpty ? 0 : finite[finite.count / 100]
            let hi = finite.isEmpty ? 1 : finite[(finite.count - 1) * 99 / 100]
            let span = hi > lo ? hi - lo : 1
            for y in 0..<h {
                for x in 0..<w {
                    let o = (y * w + x) * 3
                    if colour {
                        for k in 0..<3 { rgb[o + k] = image.voxels.double(at: voxel(x, y) * ch + k) }
                    } else {
                        let g = values[y * w + x].isFinite ? max(0, min(255, (values[y * w + x] - lo) / span * 255)) : 0
                        rgb[o] = g; rgb[o + 1] = g; rgb[o + 2] = g
                    }
                }
            }
        }
        // Class overlay.
        if let codes, codes.count == grid.count {
            for y in 0..<h {
                for x in 0..<w {
                    let c = Int(codes[voxel(x, y)])
                    guard c != 0 else { continue }
                    let col = c >= Int(MaskCodes.undeclaredBase) ? (255.0, 128.0, 0.0) : classColours[1 + (c - 1) % (classColours.count - 1)]
                    let o = (y * w + x) * 3
                    rgb[o] = 0.6 * rgb[o] + 0.4 * col.0
                    rgb[o + 1] = 0.6 * rgb[o + 1] + 0.4 * col.1
                    rgb[o + 2] = 0.6 * rgb[o + 2] + 0.4 * col.2
                }
            }
        }
        var bytes = rgb.map { UInt8(max(0, min(255, $0.rounded()))) }
        // Offending voxels on this slice.
        for m in marks {
            let c = grid.coords(Int(m))
            guard c[sa] == slice else { continue }
            let o = (c[va] * w + c[ua]) * 3
            for k in 0..<3 { bytes[o + k] = markColour[k] }
        }
        // Upscale small slices (nearest) so a reader can see single voxels.
        let f = max(1, min(8, 256 / max(1, max(w, h))))
        if f > 1 {
            var big = [UInt8](repeating: 0, count: w * f * h * f * 3)
            for y in 0..<(h * f) {
                for x in 0..<(w * f) {
                    let s = ((y / f) * w + x / f) * 3, d = (y * w * f + x) * 3
                    big[d] = bytes[s]; big[d + 1] = bytes[s + 1]; big[d + 2] = bytes[s + 2]
                }
            }
            bytes = big
        }
        return MedicalImage(format: .png, dims: [w * f, h * f], spacing: [1, 1], channels: 3, affine: .identity,
                            affineSource: .image2D, voxels: .uint8(bytes))
    }

    /// Renders and writes `DIR/<case>.png`; returns the path.
    static func write(caseID: String, directory: String, image: MedicalImage?, codes: [UInt16]?, grid: Grid?,
                      marks: [Int32], sliceAxis: Int) throws -> String? {
        let g: Grid
        if let grid { g = grid } else if let image { let sd = image.spatialDims; g = Grid(nx: sd[0], ny: sd[1], nz: sd[2]) } else { return nil }
        let thumb = render(image: image, codes: codes, grid: g, marks: marks, sliceAxis: g.is2D ? 2 : sliceAxis)
        let path = directory + "/" + fileName(for: caseID)
        try PNGCodec.write(thumb, to: path)
        return path
    }
}
