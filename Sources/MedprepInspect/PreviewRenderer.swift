import Foundation
import MedprepCore
import MedprepIO
import MedprepProcessing
import MedprepDataset

/// `medprep inspect --preview DIR`: PNG contact sheets of a convert output, read back from the
/// shards (so they show exactly what training will see).
///
/// Per case (the first `maxCases`), up to `slicesPerCase` evenly spaced slices, two sheets:
/// - `…-labels.png`: each slice as a pair, the image on the left (grey, windowed to the 1st–99th
///   percentile of the shown slices; RGB in colour when C == 3, one window for all three
///   channels; other channel counts show channel 0) and the same image with the label on the
///   right (class colours at 40% opacity, class outlines opaque; background not drawn).
/// - `…-maps.png`: the same slices as SDF | RRW pairs of one class (the first non-background
///   class), diverging colours: blue negative, white zero, red positive. The SDF is scaled
///   separately on each side (darkest blue = the most negative value over the shown slices,
///   darkest red = the most positive; the legend prints both); the RRW uses its fixed range
///   −1 … +1. The class outline is drawn in black.
/// Plus `index.html` listing the sheets with this key.
public enum PreviewRenderer {
    public struct Options: Sendable {
        public var maxCases = 6
        public var slicesPerCase = 12
        /// Slice pairs per row of a sheet.
        public var columns = 4
        public init() {}
    }

    public struct Sheet: Sendable, Equatable {
        public var caseIndex: Int
        public var caseID: String
        /// "labels" or "maps".
        public var kind: String
        /// File name inside the preview folder.
        public var file: String
        public var width: Int
        public var height: Int
        /// 0-based slice indices shown.
        public var slices: [Int]
    }

    public struct Result: Sendable {
        public var directory: String
        public var sheets: [Sheet]
        /// `index.html` inside `directory`.
        public var indexFile: String
        /// The class the maps sheets show (nil when the output has no maps).
        public var mapClass: Int?

        public var json: JSON {
            .object([("directory", .string(directory)), ("index", .string(indexFile)),
                     ("map_class", mapClass.map(JSON.int) ?? .null),
                     ("sheets", .array(sheets.map { s in
                         .object([("case_index", .int(s.caseIndex)), ("id", .string(s.caseID)), ("kind", .string(s.kind)),
                                  ("file", .string(s.file)), ("width", .int(s.width)), ("height", .int(s.height)),
                                  ("slices", .ints(s.slices))])
                     }))])
        }
    }

    /// `m` indices spread evenly over 0..<n, first and last included (all of them when n <= m).
    public static func evenlySpaced(count n: Int, max m: Int) -> [Int] {
        guard n > 0, m > 0 else { return [] }
        if n <= m { return Array(0..<n) }
        if m == 1 { return [n / 2] }
        if n < 1 << 40 { return (0..<m).map { ($0 * (n - 1) + (m - 1) / 2) / (m - 1) } }
        return (0..<m).map { Int((Double($0) * Double(n - 1) / Double(m - 1)).rounded(.down)) }
    }

    /// Display size of an H × W slice: small slices magnified by a whole factor to about 200
    /// pixels on the long side, large ones shrunk to 256.
    public static func displaySize(height h: Int, width w: Int) -> (height: Int, width: Int) {
        let long = max(h, w)
        if long > 256 { return (max(1, h * 256 / long), max(1, w * 256 / long)) }
        let f = max(1, 200 / long)
        return (h * f, w * f)
    }

    /// One slice read back from the shards.
    package struct SliceData {
        package var index: Int
        package var image: [Float]   // C·H·W
        package var label: [Int]     // H·W
        package var sdf: [Float]?    // mh·mw, the map class
        package var rrw: [Float]?
    }

    public static func render(output: String, to dir: String, options: Options = .init()) throws -> Result {
        let loc = OutputLocation(output)
        let index = try IndexFile.read(path: loc.indexPath)
        let classes = index.classes
        let k = classes.count
        guard k >= 1 else { throw MedprepError(.mismatch, path: loc.indexPath, "lists no classes.") }
        let shards = index.shards
        guard !shards.isEmpty else { throw MedprepError(.mismatch, path: loc.indexPath, "lists no shards.") }
        var readers: [Int: ShardTensorReader] = [:]
        func reader(_ n: Int) throws -> ShardTensorReader {
            if let r = readers[n] { return r }
            let r = try ShardTensorReader(path: loc.directory + "/" + shards[n].file)
            readers = [n: r]  // one open shard at a time
            return r
        }
        let first = try reader(0)
        let imageInfo = try first.info("image")
        guard imageInfo.shape.count == 4 else {
            throw MedprepError(.mismatch, path: first.path, "tensor 'image' has shape \(imageInfo.shape), expected [N, C, H, W].")
        }
        let (c, h, w) = (imageInfo.shape[1], imageInfo.shape[2], imageInfo.shape[3])
        // Maps: computed from each shown slice's label with the kernel convert and the trainer
        // use (SliceMapKernel), whatever the storage mode, so the sheet shows exactly the maps a
        // training sample gets; at full resolution.
        let maps = index.maps
        let mapClass: Int? = (maps.sdf || maps.rrw) ? (k > 1 ? 1 : 0) : nil
        let kernel = SliceMapKernel(classCount: k, convention: maps.sdf ? maps.convention : nil, rrw: maps.rrw, units: maps.units)
        let mapScale = 1
        let (mh, mw) = (h, w)

        func locate(_ j: Int) -> (shard: Int, row: Int)? {
            for (n, s) in shards.enumerated() {
                if j >= s.firstSample, j - s.firstSample < s.sampleCount { return (n, j - s.firstSample) }
            }
            return nil
        }

        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var sheets: [Sheet] = []
        let (dh, dw) = displaySize(height: h, width: w)
        for (pos, cs) in index.cases.enumerated().prefix(max(0, options.maxCases)) {
            let (f, n) = (cs.sliceRange.firstSample, cs.sliceRange.count)
            guard n >= 1 else { continue }
            let (ci, id) = (cs.caseIndex, cs.id)
            let chosen = evenlySpaced(count: n, max: options.slicesPerCase)
            var data: [SliceData] = []
            for s in chosen {
                guard f <= Int.max - s, let (shard, row) = locate(f + s) else {
                    throw MedprepError(.mismatch, path: loc.indexPath, "case '\(id)' sample \(f &+ s) is in no shard's range.")
                }
                let r = try reader(shard)
                var d = SliceData(index: s, image: try r.floats("image", rows: row..<(row + 1)),
                                  label: try r.ints("label", rows: row..<(row + 1)))
                guard d.image.count == c * h * w, d.label.count == h * w else {
                    throw MedprepError(.mismatch, path: r.path, "samples differ in size from the first shard's \(c)x\(h)x\(w).")
                }
                if let mc = mapClass {
                    let plane = h * w
                    var sdf = [Float](repeating: 0, count: k * plane), rrw = [Float](repeating: 0, count: k * plane)
                    let spacing: [Double] = cs.sliceSpacingMM.map { rc in [rc[1], rc[0]] } ?? [1, 1]
                    try sdf.withUnsafeMutableBufferPointer { sp in
                        try rrw.withUnsafeMutableBufferPointer { rp in
                            try kernel.fill(labels: d.label.map { UInt16(clamping: $0) }, height: h, width: w, spacing: spacing,
                                            scale: 1, sdfOut: kernel.options.sdf == nil ? nil : sp.baseAddress,
                                            rrwOut: kernel.options.rrw ? rp.baseAddress : nil)
                        }
                    }
                    if kernel.options.sdf != nil { d.sdf = Array(sdf[(mc * plane)..<((mc + 1) * plane)]) }
                    if kernel.options.rrw { d.rrw = Array(rrw[(mc * plane)..<((mc + 1) * plane)]) }
                }
                data.append(d)
            }
            let base = "case-\(String(format: "%04d", ci))-\(safeName(id))"
            let title = "\(index.dataset.name) / \(id)  (case \(ci), fold \(cs.fold))"
            let geometry = SliceDrawing.Geometry(c: c, h: h, w: w, dh: dh, dw: dw, mh: mh, mw: mw, columns: options.columns)
            let labels = labelSheet(data, title: title, sliceCount: n, axis: cs.sliceAxis.rawValue, classes: classes.map(\.name), g: geometry)
            try labels.writePNG(to: dir + "/" + base + "-labels.png")
            sheets.append(Sheet(caseIndex: ci, caseID: id, kind: "labels", file: base + "-labels.png", width: labels.width, height: labels.height, slices: chosen))
            if let mc = mapClass {
                let sheet = mapSheet(data, title: title, sliceCount: n, axis: cs.sliceAxis.rawValue, mapClass: mc, className: classes[mc].name,
                                     units: maps.units.rawValue, scale: mapScale, g: geometry)
                try sheet.writePNG(to: dir + "/" + base + "-maps.png")
                sheets.append(Sheet(caseIndex: ci, caseID: id, kind: "maps", file: base + "-maps.png", width: sheet.width, height: sheet.height, slices: chosen))
            }
        }
        let html = indexHTML(dataset: index.dataset.name, output: loc.directory, sheets: sheets, cases: index.cases.count,
                             mapClass: mapClass.map { ($0, classes[$0].name) }, units: maps.units.rawValue, scale: mapScale)
        try FileIO.writeAtomically(Array(html.utf8), to: dir + "/index.html")
        return Result(directory: dir, sheets: sheets, indexFile: dir + "/index.html", mapClass: mapClass)
    }

    package static func safeName(_ s: String) -> String {
        String(s.unicodeScalars.map { u -> Character in
            (("0"..."9").contains(u) || ("a"..."z").contains(u) || ("A"..."Z").contains(u) || u == "-" || u == "_" || u == ".") ? Character(u) : "_"
        })
    }

    // MARK: - Sheets

    package static let margin = SliceDrawing.margin, gap = 16, panelGap = 6, lineHeight = SliceDrawing.lineHeight

    /// Draws a grid of cells (one per slice, `panels` panels each) under `header` lines;
    /// `drawHeader` draws them, `drawPanel` fills panel p of slice i at (x, y).
    package static func sheet(count: Int, panels: Int, g: SliceDrawing.Geometry, headerHeight: Int, headerWidth: Int,
                      captions: [String], draw: (inout RGBCanvas, _ slice: Int, _ panel: Int, _ x: Int, _ y: Int) -> Void,
                      header: (inout RGBCanvas) -> Void) -> RGBCanvas {
        let cols = max(1, min(g.columns, count))
        let rows = (count + cols - 1) / cols
        let pairW = panels * g.dw + (panels - 1) * panelGap
        let captionScale = captions.allSatisfy({ BitmapFont.width($0, scale: 2) <= pairW }) ? 2 : 1
        let captionH = BitmapFont.height * captionScale + 6
        let cellW = pairW, cellH = captionH + g.dh
        let gridW = cols * cellW + (cols - 1) * gap
        let width = 2 * margin + max(gridW, headerWidth)
        let height = margin + headerHeight + rows * cellH + (rows - 1) * gap + margin
        var canvas = RGBCanvas(width: width, height: height, fill: PreviewColours.background)
        header(&canvas)
        for i in 0..<count {
            let x = margin + (i % cols) * (cellW + gap)
            let y = margin + headerHeight + (i / cols) * (cellH + gap)
            var caption = captions[i]
            let maxChars = max(1, pairW / (BitmapFont.advance * captionScale))
            if caption.count > maxChars { caption = String(caption.prefix(maxChars)) }
            canvas.text(caption, x: x, y: y, scale: captionScale, PreviewColours.dimText)
            for p in 0..<panels {
                let px = x + p * (g.dw + panelGap), py = y + captionH
                canvas.strokeRect(x: px - 1, y: py - 1, width: g.dw + 2, height: g.dh + 2, PreviewColours.frame)
                draw(&canvas, i, p, px, py)
            }
        }
        return canvas
    }

    package static func caption(_ s: Int, of n: Int, axis: String?) -> String {
        if n == 1 { return "single slice, p=1" }
        let p = Double(s + 1) / Double(n)
        return "\(axis ?? "slice") \(s)/\(n)  p=\(fixed(p, 3))"
    }

    package static func labelSheet(_ data: [SliceData], title: String, sliceCount: Int, axis: String?, classes: [String], g: SliceDrawing.Geometry) -> RGBCanvas {
        // Window: 1st-99th percentile of the shown slices (all channels when shown as RGB).
        let rgb = g.c == 3
        let plane = g.h * g.w
        var values: [Float] = []
        for d in data { values += (rgb ? d.image[...] : d.image[0..<plane]).filter(\.isFinite) }
        values.sort()
        var lo = SliceDrawing.percentile(sorted: values, 1), hi = SliceDrawing.percentile(sorted: values, 99)
        if !(hi > lo) { hi = lo + 1 }

        let line2 = (sliceCount == 1 ? "1 slice" : "\(sliceCount) slices\(axis.map { " along \($0)" } ?? ""), \(data.count) shown") + ". left: image (window \(short(Double(lo)))..\(short(Double(hi))), 1-99th pct), right: label"
        // Legend items wrap to the sheet width.
        let items = classes.enumerated().dropFirst().map { (i, n) in (i, "\(i) \(n)") }
        let gridW = min(g.columns, data.count) * (2 * g.dw + panelGap) + (min(g.columns, data.count) - 1) * gap
        let avail = max(gridW, BitmapFont.width(title), 480)
        var legendRows: [[(Int, String)]] = [[]]
        var rowW = 0
        for it in items {
            let wItem = 22 + BitmapFont.width(it.1) + 20
            if rowW + wItem > avail && !legendRows[legendRows.count - 1].isEmpty { legendRows.append([]); rowW = 0 }
            legendRows[legendRows.count - 1].append(it)
            rowW += wItem
        }
        let headerW = max(BitmapFont.width(title), BitmapFont.width(line2), legendRows.map { r in r.reduce(0) { $0 + 22 + BitmapFont.width($1.1) + 20 } }.max() ?? 0)
        let headerH = lineHeight * (2 + legendRows.count) + 6
        let captions = data.map { caption($0.index, of: sliceCount, axis: axis) }
        return sheet(count: data.count, panels: 2, g: g, headerHeight: headerH, headerWidth: headerW, captions: captions, draw: { cv, i, p, x, y in
            let d = data[i]
            SliceDrawing.drawImage(&cv, d.image, g: g, lo: lo, hi: hi, x: x, y: y)
            if p == 1 { SliceDrawing.drawLabelOverlay(&cv, d.label, g: g, x: x, y: y) }
        }, header: { cv in
            cv.text(title, x: margin, y: margin, PreviewColours.text)
            cv.text(line2, x: margin, y: margin + lineHeight, PreviewColours.dimText)
            for (r, row) in legendRows.enumerated() {
                var x = margin
                let y = margin + lineHeight * (2 + r)
                for (k, name) in row {
                    cv.fillRect(x: x, y: y, width: 14, height: 14, PreviewColours.label(k))
                    x += 22
                    x += cv.text(name, x: x, y: y, PreviewColours.text) + 20
                }
            }
        })
    }

    package static func mapSheet(_ data: [SliceData], title: String, sliceCount: Int, axis: String?, mapClass: Int, className: String,
                         units: String, scale: Int, g: SliceDrawing.Geometry) -> RGBCanvas {
        let hasSDF = data.first?.sdf != nil, hasRRW = data.first?.rrw != nil
        var sdfMin: Float = 0, sdfMax: Float = 0
        for d in data { for v in d.sdf ?? [] where v.isFinite { sdfMin = min(sdfMin, v); sdfMax = max(sdfMax, v) } }
        let panels = (hasSDF ? 1 : 0) + (hasRRW ? 1 : 0)
        let which = [hasSDF ? "SDF" : nil, hasRRW ? "RRW" : nil].compactMap { $0 }.joined(separator: " | ")
        let line2 = "\(which) of class \(mapClass) '\(className)'\(scale > 1 ? " at scale \(scale)" : ""). blue < 0, white 0, red > 0; black: class outline"
        let barW = 160
        let header3 = hasSDF ? "SDF (\(units))" : ""
        let sdfLeft = short(Double(sdfMin)), sdfRight = "+" + short(Double(sdfMax))
        let legendW = (hasSDF ? BitmapFont.width(header3) + 10 + BitmapFont.width(sdfLeft) + 8 + barW + 8 + BitmapFont.width(sdfRight) + 30 : 0)
            + (hasRRW ? BitmapFont.width("RRW") + 10 + BitmapFont.width("-1") + 8 + barW + 8 + BitmapFont.width("+1") : 0)
        let headerW = max(BitmapFont.width(title), BitmapFont.width(line2), legendW)
        let headerH = lineHeight * 3 + 16
        let captions = data.map { caption($0.index, of: sliceCount, axis: axis) }
        let sdfNorm: (Float) -> Double = { v in
            if v < 0 { return sdfMin < 0 ? Double(v / -sdfMin) : -1 }
            if v > 0 { return sdfMax > 0 ? Double(v / sdfMax) : 1 }
            return 0
        }
        return sheet(count: data.count, panels: max(1, panels), g: g, headerHeight: headerH, headerWidth: headerW, captions: captions, draw: { cv, i, p, x, y in
            let d = data[i]
            let useSDF = hasSDF && p == 0
            guard let plane = useSDF ? d.sdf : d.rrw else { return }
            let norm: (Float) -> Double = useSDF ? sdfNorm : { Double($0) }
            for yy in 0..<g.dh {
                let sy = min(g.mh - 1, yy * g.mh / g.dh)
                for xx in 0..<g.dw {
                    let sx = min(g.mw - 1, xx * g.mw / g.dw)
                    cv[x + xx, y + yy] = PreviewColours.diverging(norm(plane[sy * g.mw + sx]))
                }
            }
            SliceDrawing.drawOutline(&cv, d.label, of: mapClass, g: g, x: x, y: y, (0, 0, 0))
        }, header: { cv in
            cv.text(title, x: margin, y: margin, PreviewColours.text)
            cv.text(line2, x: margin, y: margin + lineHeight, PreviewColours.dimText)
            var x = margin
            let y = margin + lineHeight * 2 + 2
            func bar(_ name: String, _ left: String, _ right: String) {
                x += cv.text(name, x: x, y: y, PreviewColours.text) + 10
                x += cv.text(left, x: x, y: y, PreviewColours.text) + 8
                for i in 0..<barW {
                    let t = Double(i) / Double(barW - 1) * 2 - 1
                    cv.fillRect(x: x + i, y: y - 1, width: 1, height: 16, PreviewColours.diverging(t))
                }
                cv.fillRect(x: x + barW / 2, y: y + 15, width: 1, height: 5, PreviewColours.text)
                cv.text("0", x: x + barW / 2 - 2, y: y + 21, scale: 1, PreviewColours.dimText)
                x += barW + 8
                x += cv.text(right, x: x, y: y, PreviewColours.text) + 30
            }
            if hasSDF { bar(header3, sdfLeft, sdfRight) }
            if hasRRW { bar("RRW", "-1", "+1") }
        })
    }

    // MARK: - Panels

    // MARK: - Text

    /// Three significant digits, no exponent for ordinary magnitudes.
    package static func short(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        let a = abs(v)
        if a == 0 { return "0" }
        if a >= 1000 || a < 0.001 { return String(format: "%.2e", v) }
        let decimals = a >= 100 ? 0 : (a >= 10 ? 1 : (a >= 1 ? 2 : 3))
        return fixed(v, decimals)
    }

    package static func fixed(_ v: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", v)
    }

    package static func html(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    package static func indexHTML(dataset: String, output: String, sheets: [Sheet], cases: Int, mapClass: (Int, String)?, units: String, scale: Int) -> String {
        var s = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>medprep preview: \(html(dataset))</title>
            <style>
            body { background: #1c1c20; color: #e8e8e8; font-family: sans-serif; margin: 24px; }
            img { max-width: 100%; image-rendering: pixelated; display: block; margin: 8px 0 20px; }
            code { color: #ffd479; } a { color: #8cc8ff; }
            </style></head><body>
            <h1>medprep preview: \(html(dataset))</h1>
            <p>Output <code>\(html(output))</code>; \(Set(sheets.map(\.caseIndex)).count) of \(cases) cases, read back from the shards.</p>
            <p><b>Labels sheets</b>: each slice as a pair. Left: the normalised image, grey (RGB when it has 3 channels),
            windowed to the 1st&ndash;99th percentile of the slices shown. Right: the same with the label on top,
            each class in its colour at 40% opacity with an opaque outline (background not drawn).
            Captions: slice index i (0-based, canonical orientation) / slice count N and p = (i+1)/N.</p>

            """
        if let (k, name) = mapClass {
            s += """
                <p><b>Maps sheets</b>: the same slices, signed distance map (SDF, \(html(units))) left and rectified region-wise map (RRW) right,
                of class \(k) <code>\(html(name))</code>\(scale > 1 ? " at scale \(scale)" : ""). Diverging colours: blue negative, white zero, red positive
                (docs/distance-maps.md: the boundary convention is negative inside, positive outside). The SDF is scaled separately on
                each side (darkest blue = the most negative value shown, darkest red = the most positive; the legend gives both);
                the RRW uses its fixed range &minus;1&hellip;+1. Black: the class outline.</p>

                """
        }
        var current: Int? = nil
        for sh in sheets {
            if sh.caseIndex != current {
                current = sh.caseIndex
                s += "<h2>\(html(sh.caseID)) (case \(sh.caseIndex))</h2>\n"
            }
            s += "<p><a href=\"\(html(sh.file))\">\(html(sh.file))</a></p><img src=\"\(html(sh.file))\" alt=\"\(html(sh.caseID)) \(sh.kind)\" width=\"\(sh.width)\">\n"
        }
        s += "</body></html>\n"
        return s
    }
}
