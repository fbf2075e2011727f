/// The one error type users see. Modelled on NIO's `FileSystemError`: a stable code,
/// a one-sentence message naming the file and the offending value, an optional cause.
public struct MedprepError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case fileNotFound, ioFailure, truncated, badMagic, badHeader, unsupported
        case corruptCompression, corruptImage, invalidArgument, tooLarge, mismatch
    }

    public var code: Code
    /// File the problem is in, if any.
    public var path: String?
    public var message: String

    public init(_ code: Code, path: String? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    /// `path: message`, one line, as printed to users.
    public var description: String {
        if let path { return "\(path): \(message)" }
        return message
    }

    /// The same error attributed to the file the user named. When the problem is in another
    /// file (the .img of a .hdr/.img pair), that file is named in the message.
    public func at(_ path: String) -> MedprepError {
        var copy = self
        if let inner = copy.path, inner != path { copy.message = "in '\(inner)': \(message)" }
        copy.path = path
        return copy
    }
}
