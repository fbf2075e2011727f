import MedprepCore

/// A 2D slice as training consumes it: `[C, H, W]`, channels planar, rows of `width` values
/// (`index = (c * height + row) * width + column`). Labels are single-channel `[H, W]`.
public struct Slice2D<Element: BitwiseCopyable & Sendable>: Sendable {
    public var values: [Element]
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(values: [Element], channels: Int = 1, height: Int, width: Int) throws {
        guard channels >= 1, height >= 1, width >= 1, values.count == channels * height * width else {
            throw MedprepError(.mismatch, "slice of \(values.count) values does not match \(channels) x \(height) x \(width).")
        }
        self.values = values
        self.channels = channels
        self.height = height
        self.width = width
    }

    public subscript(c: Int, row: Int, column: Int) -> Element { values[(c * height + row) * width + column] }
    public subscript(row: Int, column: Int) -> Element { values[row * width + column] }
}

/// A rectangle of rows and columns (half-open ranges).
public struct Box2D: Sendable, Equatable, Codable {
    public var rows: Range<Int>
    public var columns: Range<Int>

    public init(rows: Range<Int>, columns: Range<Int>) {
        self.rows = rows
        self.columns = columns
    }

    /// Grown by `margin` on every side and clipped to a `height` x `width` slice.
    public func expanded(by margin: Int, height: Int, width: Int) -> Box2D {
        Box2D(rows: max(0, rows.lowerBound - margin)..<min(height, rows.upperBound + margin),
              columns: max(0, columns.lowerBound - margin)..<min(width, columns.upperBound + margin))
    }
}

/// A box over a volume's x, y and z voxel indices.
public struct Box3D: Sendable, Equatable, Codable {
    public var ranges: [Range<Int>]

    public init(ranges: [Range<Int>]) { self.ranges = ranges }

    /// The box as seen in slices along `axis` (rows and columns as `Slicing.planeAxes`).
    public func inPlane(_ axis: SliceAxis) -> Box2D {
        let p = Slicing.planeAxes(axis)
        return Box2D(rows: ranges[p.rows], columns: ranges[p.columns])
    }
}
