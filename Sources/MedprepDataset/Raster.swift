import MedprepCore
import MedprepIO

/// An 8-bit RGB image to draw contact sheets on (row-major, pixel (0,0) top-left).
public struct RGBCanvas: Sendable {
    public typealias RGB = (UInt8, UInt8, UInt8)
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, fill: RGB) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = fill.0; pixels[3 * i + 1] = fill.1; pixels[3 * i + 2] = fill.2 }
    }

    @inline(__always) public subscript(x: Int, y: Int) -> RGB {
        get { let i = 3 * (y * width + x); return (pixels[i], pixels[i + 1], pixels[i + 2]) }
        set { let i = 3 * (y * width + x); pixels[i] = newValue.0; pixels[i + 1] = newValue.1; pixels[i + 2] = newValue.2 }
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        self[x, y] = c
    }

    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
        for yy in max(0, y)..<min(height, y + h) { for xx in max(0, x)..<min(width, x + w) { self[xx, yy] = c } }
    }

    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB) {
        for xx in x..<(x + w) { set(xx, y, c); set(xx, y + h - 1, c) }
        for yy in y..<(y + h) { set(x, yy, c); set(x + w - 1, yy, c) }
    }

    /// Text in the built-in 5x7 font, each font pixel `scale` x `scale`; returns the width drawn.
    @discardableResult
    public mutating func text(_ s: String, x: Int, y: Int, scale: Int = 2, _ c: RGB) -> Int {
        var cx = x
        for ch in s {
            let rows = BitmapFont.glyph(ch)
            for (ry, row) in rows.enumerated() {
                for rx in 0..<5 where row & (1 << (4 - rx)) != 0 {
                    fillRect(x: cx + rx * scale, y: y + ry * scale, width: scale, height: scale, c)
                }
            }
            cx += BitmapFont.advance * scale
        }
        return cx - x
    }

    /// The canvas as an 8-bit RGB `MedicalImage` (what `PNGCodec.encode` writes).
    public var image: MedicalImage {
        MedicalImage(format: .png, dims: [width, height], spacing: [1, 1], channels: 3, affine: .identity,
                     affineSource: .image2D, voxels: .uint8(pixels))
    }

    public func writePNG(to path: String) throws {
        try PNGCodec.write(image, to: path)
    }
}

/// Colours of the previews.
public enum PreviewColours {
    /// Label colours for classes 1, 2, 3, ... (background is not drawn): Sasha Trubetskoy's
    /// 20 distinct colours, starting red, green, yellow, blue, orange, purple, cyan, magenta.
    public static let classes: [RGBCanvas.RGB] = [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
        (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
        (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
        (0, 0, 128), (128, 128, 128),
    ]

    public static func label(_ k: Int) -> RGBCanvas.RGB { classes[(max(1, k) - 1) % classes.count] }

    /// ColorBrewer RdBu reversed (matplotlib's `RdBu_r`): dark blue, white in the middle, dark red.
    package static let diverging: [(Double, Double, Double)] = [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ]

    /// t in -1 ... 1 (clamped; NaN is grey): -1 dark blue, 0 white, +1 dark red.
    public static func diverging(_ t: Double) -> RGBCanvas.RGB {
        guard t.isFinite else { return t.isNaN ? (128, 128, 128) : (t > 0 ? diverging(1) : diverging(-1)) }
        let u = (min(1, max(-1, t)) + 1) / 2 * Double(diverging.count - 1)
        let i = min(diverging.count - 2, Int(u))
        let f = u - Double(i)
        let a = diverging[i], b = diverging[i + 1]
        func mix(_ x: Double, _ y: Double) -> UInt8 { UInt8(max(0, min(255, (x + (y - x) * f).rounded()))) }
        return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    public static let background: RGBCanvas.RGB = (28, 28, 32)
    public static let text: RGBCanvas.RGB = (235, 235, 235)
    public static let dimText: RGBCanvas.RGB = (160, 160, 170)
    /// 1-pixel frame around each panel (dark images stay distinct from the background).
    public static let frame: RGBCanvas.RGB = (78, 78, 90)
}

/// A 5x7 bitmap font for ASCII letters, digits and common punctuation (others draw as '?').
/// Each glyph is 7 rows, bit 4 the leftmost pixel.
public enum BitmapFont {
    /// Horizontal advance per character in font pixels (5 + 1 spacing).
    public static let advance = 6
    public static let height = 7

    public static func width(_ s: String, scale: Int = 2) -> Int { s.count * advance * scale }

    public static func glyph(_ c: Character) -> [UInt8] {
        glyphs[c] ?? glyphs["?"]!
    }

    package static func rows(_ s: String) -> [UInt8] {
        s.split(separator: " ").map { row in row.reduce(UInt8(0)) { $0 << 1 | ($1 == "#" ? 1 : 0) } }
    }

    package static let glyphs: [Character: [UInt8]] = {
        let table: [(Character, String)] = [
            (" ", "..... ..... ..... ..... ..... ..... ....."),
            ("0", ".###. #...# #..## #.#.# ##..# #...# .###."),
            ("1", "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."),
            ("2", ".###. #...# ....# ...#. ..#.. .#... #####"),
            ("3", "##### ...#. ..#.. ...#. ....# #...# .###."),
            ("4", "...#. ..##. .#.#. #..#. ##### ...#. ...#."),
            ("5", "##### #.... ####. ....# ....# #...# .###."),
            ("6", "..##. .#... #.... ####. #...# #...# .###."),
            ("7", "##### ....# ...#. ..#.. .#... .#... .#..."),
            ("8", ".###. #...# #...# .###. #...# #...# .###."),
            ("9", ".###. #...# #...# .#### ....# ...#. .##.."),
            ("A", ".###. #...# #...# ##### #...# #...# #...#"),
            ("B", "####. #...# #...# ####. #...# #...# ####."),
            ("C", ".###. #...# #.... #.... #.... #...# .###."),
            ("D", "###.. #..#. #...# #...# #...# #..#. ###.."),
            ("E", "##### #.... #.... ####. #.... #.... #####"),
            ("F", "##### #.... #.... ####. #.... #.... #...."),
            ("G", ".###. #...# #.... #.### #...# #...# .####"),
            ("H", "#...# #...# #...# ##### #...# #...# #...#"),
            ("I", ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."),
            ("J", "..### ...#. ...#. ...#. ...#. #..#. .##.."),
            ("K", "#...# #..#. #.#.. ##... #.#.. #..#. #...#"),
            ("L", "#.... #.... #.... #.... #.... #.... #####"),
            ("M", "#...# ##.## #.#.# #.#.# #...# #...# #...#"),
            ("N", "#...# #...# ##..# #.#.# #..## #...# #...#"),
            ("O", ".###. #...# #...# #...# #...# #...# .###."),
            ("P", "####. #...# #...# ####. #.... #.... #...."),
            ("Q", ".###. #...# #...# #...# #.#.# #..#. .##.#"),
            ("R", "####. #...# #...# ####. #.#.. #..#. #...#"),
            ("S", ".#### #.... #.... .###. ....# ....# ####."),
            ("T", "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
            ("U", "#...# #...# #...# #...# #...# #...# .###."),
            ("V", "#...# #...# #...# #...# #...# .#.#. ..#.."),
            ("W", "#...# #...# #...# #.#.# #.#.# #.#.# .#.#."),
            ("X", "#...# #...# .#.#. ..#.. .#.#. #...# #...#"),
            ("Y", "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."),
            ("Z", "##### ....# ...#. ..#.. .#... #.... #####"),
            ("a", "..... ..... .###. ....# .#### #...# .####"),
            ("b", "#.... #.... #.##. ##..# #...# #...# ####."),
            ("c", "..... ..... .###. #.... #.... #...# .###."),
            ("d", "....# ....# .##.# #..## #...# #...# .####"),
            ("e", "..... ..... .###. #...# ##### #.... .###."),
            ("f", "..##. .#..# .#... ###.. .#... .#... .#..."),
            ("g", "..... .#### #...# #...# .#### ....# .###."),
            ("h", "#.... #.... #.##. ##..# #...# #...# #...#"),
            ("i", "..#.. ..... .##.. ..#.. ..#.. ..#.. .###."),
            ("j", "...#. ..... ..##. ...#. ...#. #..#. .##.."),
            ("k", "#.... #.... #..#. #.#.. ##... #.#.. #..#."),
            ("l", ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###."),
            ("m", "..... ..... ##.#. #.#.# #.#.# #...# #...#"),
            ("n", "..... ..... #.##. ##..# #...# #...# #...#"),
            ("o", "..... ..... .###. #...# #...# #...# .###."),
            ("p", "..... ..... ####. #...# ####. #.... #...."),
            ("q", "..... ..... .##.# #..## .#### ....# ....#"),
            ("r", "..... ..... #.##. ##..# #.... #.... #...."),
            ("s", "..... ..... .###. #.... .###. ....# ####."),
            ("t", ".#... .#... ###.. .#... .#... .#..# ..##."),
            ("u", "..... ..... #...# #...# #...# #..## .##.#"),
            ("v", "..... ..... #...# #...# #...# .#.#. ..#.."),
            ("w", "..... ..... #...# #...# #.#.# #.#.# .#.#."),
            ("x", "..... ..... #...# .#.#. ..#.. .#.#. #...#"),
            ("y", "..... ..... #...# #...# .#### ....# .###."),
            ("z", "..... ..... ##### ...#. ..#.. .#... #####"),
            (".", "..... ..... ..... ..... ..... .##.. .##.."),
            (",", "..... ..... ..... ..... .##.. ..#.. .#..."),
            (":", "..... .##.. .##.. ..... .##.. .##.. ....."),
            (";", "..... .##.. .##.. ..... .##.. ..#.. .#..."),
            ("-", "..... ..... ..... ##### ..... ..... ....."),
            ("_", "..... ..... ..... ..... ..... ..... #####"),
            ("/", "..... ....# ...#. ..#.. .#... #.... ....."),
            ("=", "..... ..... ##### ..... ##### ..... ....."),
            ("(", "...#. ..#.. .#... .#... .#... ..#.. ...#."),
            (")", ".#... ..#.. ...#. ...#. ...#. ..#.. .#..."),
            ("[", ".###. .#... .#... .#... .#... .#... .###."),
            ("]", ".###. ...#. ...#. ...#. ...#. ...#. .###."),
            ("+", "..... ..#.. ..#.. ##### ..#.. ..#.. ....."),
            ("%", "##... ##..# ...#. ..#.. .#... #..## ...##"),
            ("#", ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."),
            ("'", ".##.. ..#.. .#... ..... ..... ..... ....."),
            ("\"", ".#.#. .#.#. .#.#. ..... ..... ..... ....."),
            ("<", "...#. ..#.. .#... #.... .#... ..#.. ...#."),
            (">", ".#... ..#.. ...#. ....# ...#. ..#.. .#..."),
            ("?", ".###. #...# ....# ...#. ..#.. ..... ..#.."),
            ("!", "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."),
            ("*", "..... ..#.. #.#.# .###. #.#.# ..#.. ....."),
            ("|", "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
            ("&", ".##.. #..#. #.#.. .#... #.#.# #..#. .##.#"),
            ("@", ".###. #...# ....# .##.# #.#.# #.#.# .###."),
            ("~", "..... ..... .#... #.#.# ...#. ..... ....."),
        ]
        var out: [Character: [UInt8]] = [:]
        for (c, s) in table { out[c] = rows(s) }
        return out
    }()
}

/// Drawing a slice (image windowed grey or RGB, labels, outlines) onto a canvas: the one renderer
/// of `medprep inspect --preview` sheets and `medprep validate --thumbnails`.
public enum SliceDrawing {
    public static let margin = 16, lineHeight = 22

    /// numpy's default (linear) percentile of sorted values, p in 0...100.
    public static func percentile(sorted v: [Float], _ p: Double) -> Float {
        guard !v.isEmpty else { return 0 }
        let pos = p / 100 * Double(v.count - 1)
        let i = Int(pos.rounded(.down)), f = pos - Double(i)
        if i + 1 >= v.count { return v[v.count - 1] }
        return Float(Double(v[i]) + (Double(v[i + 1]) - Double(v[i])) * f)
    }

    /// An H x W slice drawn at dh x dw (maps mh x mw); `columns` slices per sheet row.
    public struct Geometry: Sendable {
        public var c, h, w, dh, dw, mh, mw, columns: Int
        public init(c: Int, h: Int, w: Int, dh: Int, dw: Int, mh: Int, mw: Int, columns: Int) {
            self.c = c; self.h = h; self.w = w; self.dh = dh; self.dw = dw; self.mh = mh; self.mw = mw; self.columns = columns
        }
    }

    public static func drawImage(_ cv: inout RGBCanvas, _ image: [Float], g: Geometry, lo: Float, hi: Float, x: Int, y: Int) {
        let plane = g.h * g.w
        let scale = 255 / (hi - lo)
        func grey(_ v: Float) -> UInt8 {
            guard v.isFinite else { return 0 }
            return UInt8(max(0, min(255, ((v - lo) * scale).rounded())))
        }
        for yy in 0..<g.dh {
            let sy = min(g.h - 1, yy * g.h / g.dh)
            for xx in 0..<g.dw {
                let sx = min(g.w - 1, xx * g.w / g.dw)
                let i = sy * g.w + sx
                if g.c == 3 {
                    cv[x + xx, y + yy] = (grey(image[i]), grey(image[plane + i]), grey(image[2 * plane + i]))
                } else {
                    let v = grey(image[i])
                    cv[x + xx, y + yy] = (v, v, v)
                }
            }
        }
    }

    public static func displayLabel(_ label: [Int], g: Geometry) -> [Int] {
        var out = [Int](repeating: 0, count: g.dh * g.dw)
        for yy in 0..<g.dh {
            let sy = min(g.h - 1, yy * g.h / g.dh)
            for xx in 0..<g.dw { out[yy * g.dw + xx] = label[sy * g.w + min(g.w - 1, xx * g.w / g.dw)] }
        }
        return out
    }

    /// Class colours at 40% over the image already drawn at (x, y); outlines opaque.
    public static func drawLabelOverlay(_ cv: inout RGBCanvas, _ label: [Int], g: Geometry, x: Int, y: Int) {
        let d = displayLabel(label, g: g)
        let alpha = 0.4
        for yy in 0..<g.dh {
            for xx in 0..<g.dw {
                let l = d[yy * g.dw + xx]
                guard l > 0 else { continue }
                let col = PreviewColours.label(l)
                var edge = false
                for (nx, ny) in [(xx - 1, yy), (xx + 1, yy), (xx, yy - 1), (xx, yy + 1)] where nx >= 0 && ny >= 0 && nx < g.dw && ny < g.dh {
                    if d[ny * g.dw + nx] != l { edge = true; break }
                }
                if edge {
                    cv[x + xx, y + yy] = col
                } else {
                    let o = cv[x + xx, y + yy]
                    func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((Double(a) * (1 - alpha) + Double(b) * alpha).rounded()) }
                    cv[x + xx, y + yy] = (mix(o.0, col.0), mix(o.1, col.1), mix(o.2, col.2))
                }
            }
        }
    }

    /// The inner outline of class `k` (pixels of k with a 4-neighbour that is not k).
    public static func drawOutline(_ cv: inout RGBCanvas, _ label: [Int], of k: Int, g: Geometry, x: Int, y: Int, _ col: RGBCanvas.RGB) {
        let d = displayLabel(label, g: g)
        for yy in 0..<g.dh {
            for xx in 0..<g.dw where d[yy * g.dw + xx] == k {
                for (nx, ny) in [(xx - 1, yy), (xx + 1, yy), (xx, yy - 1), (xx, yy + 1)] where nx >= 0 && ny >= 0 && nx < g.dw && ny < g.dh {
                    if d[ny * g.dw + nx] != k { cv[x + xx, y + yy] = col; break }
                }
            }
        }
    }
}
