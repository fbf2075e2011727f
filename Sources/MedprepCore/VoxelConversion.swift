/// Stored scalar types that convert to Float/Double. The generic kernels below are specialised
/// per type, so each conversion is one tight loop the compiler vectorises.
public protocol VoxelScalar {
    var asFloat: Float { get }
    var asDouble: Double { get }
    var byteSwapped: Self { get }
}

extension UInt8: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension Int8: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension Int16: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension UInt16: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension Int32: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension UInt32: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension Int64: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension UInt64: VoxelScalar { @inline(__always) public var asFloat: Float { Float(self) }; @inline(__always) public var asDouble: Double { Double(self) } }
extension Float: VoxelScalar {
    @inline(__always) public var asFloat: Float { self }
    @inline(__always) public var asDouble: Double { Double(self) }
    @inline(__always) public var byteSwapped: Float { Float(bitPattern: bitPattern.byteSwapped) }
}
extension Double: VoxelScalar {
    @inline(__always) public var asFloat: Float { Float(self) }
    @inline(__always) public var asDouble: Double { self }
    @inline(__always) public var byteSwapped: Double { Double(bitPattern: bitPattern.byteSwapped) }
}

public enum VoxelConversion {
    /// dst[i] = Float(src[i] * slope + inter) (in Double when scaled, as nibabel does).
    @inlinable
    public static func toFloat<T: VoxelScalar>(_ src: UnsafeBufferPointer<T>, _ dst: UnsafeMutableBufferPointer<Float>,
                                               scaling: IntensityScaling?) {
        let n = min(src.count, dst.count)
        guard let s = scaling else {
            for i in 0..<n { dst[i] = src[i].asFloat }
            return
        }
        let slope = s.slope, inter = s.intercept
        for i in 0..<n { dst[i] = Float(src[i].asDouble * slope + inter) }
    }

    /// Converts raw stored bytes already in host order, read in place (e.g. a memory-mapped
    /// file): no copy. `src` must be aligned to the element size.
    public static func hostRawToFloat(_ src: UnsafeRawBufferPointer, type: VoxelType,
                                      into dst: UnsafeMutableBufferPointer<Float>, scaling: IntensityScaling?) {
        func run<T: VoxelScalar>(_: T.Type) {
            let n = src.count / MemoryLayout<T>.stride
            guard n > 0, let base = src.baseAddress else { return }
            let typed = UnsafeBufferPointer(start: base.assumingMemoryBound(to: T.self), count: n)
            toFloat(typed, dst, scaling: scaling)
        }
        switch type {
        case .uint8: run(UInt8.self)
        case .int8: run(Int8.self)
        case .int16: run(Int16.self)
        case .uint16: run(UInt16.self)
        case .int32: run(Int32.self)
        case .uint32: run(UInt32.self)
        case .int64: run(Int64.self)
        case .uint64: run(UInt64.self)
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
    }

    /// Converts raw stored bytes (host or swapped order) of `type` into floats, in place of
    /// `dst`. `scratch` must be writable and aligned; it is byte-swapped in place when `swap`,
    /// then read as host-order values by `hostRawToFloat`.
    public static func rawToFloat(_ scratch: UnsafeMutableRawBufferPointer, type: VoxelType, swap: Bool,
                                  into dst: UnsafeMutableBufferPointer<Float>, scaling: IntensityScaling?) {
        func swapWords<W: FixedWidthInteger>(_: W.Type) {
            scratch.withMemoryRebound(to: W.self) { w in for i in w.indices { w[i] = w[i].byteSwapped } }
        }
        if swap {
            switch type.byteWidth {
            case 2: swapWords(UInt16.self)
            case 4: swapWords(UInt32.self)
            case 8: swapWords(UInt64.self)
            default: break
            }
        }
        hostRawToFloat(UnsafeRawBufferPointer(scratch), type: type, into: dst, scaling: scaling)
    }
}
