#if canImport(Glibc)
import Glibc
#endif
import MedprepCore

/// Whole-file reads and crash-safe writes. Every error names the path.
public enum FileIO {
    /// Reads a whole file. `limit` guards against reading something absurd by mistake.
    public static func readAll(_ path: String, limit: Int = 1 << 40) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw MedprepError(e == ENOENT ? .fileNotFound : .ioFailure, path: path,
                               e == ENOENT ? "file not found." : "cannot open file: \(String(cString: strerror(e))).")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw MedprepError(.ioFailure, path: path, "cannot stat file.") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw MedprepError(.ioFailure, path: path, "is a directory, not a file.") }
        let size = Int(st.st_size)
        guard size <= limit else { throw MedprepError(.tooLarge, path: path, "file is \(size) bytes, more than the limit \(limit).") }
        var out = [UInt8](repeating: 0, count: size)
        var done = 0
        try out.withUnsafeMutableBytes { buf in
            while done < size {
                let n = read(fd, buf.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MedprepError(.ioFailure, path: path, "read failed: \(String(cString: strerror(errno))).")
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < size { out.removeSubrange(done...) }
        return out
    }

    /// An open file for positioned reads (header first, then voxels straight into their buffer).
    public final class ReadHandle {
        public let path: String
        public let size: Int
        private let fd: Int32

        public init(_ path: String) throws {
            self.path = path
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                throw MedprepError(e == ENOENT ? .fileNotFound : .ioFailure, path: path,
                                   e == ENOENT ? "file not found." : "cannot open file: \(String(cString: strerror(e))).")
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else { close(fd); throw MedprepError(.ioFailure, path: path, "cannot stat file.") }
            if (st.st_mode & S_IFMT) == S_IFDIR { close(fd); throw MedprepError(.ioFailure, path: path, "is a directory, not a file.") }
            size = Int(st.st_size)
        }

        deinit { close(fd) }

        /// Fills `buffer` from `offset`; returns the bytes read (short only at end of file).
        public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
            var done = 0
            while done < buffer.count {
                let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MedprepError(.ioFailure, path: path, "read failed: \(String(cString: strerror(errno))).")
                }
                if n == 0 { break }
                done += n
            }
            return done
        }

        /// Maps `count` bytes from `offset` read-only for the duration of `body` (page-cache
        /// pages are used in place, no copy). Falls back to a positioned read if mmap fails.
        public func withMappedBytes<R>(offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
            let page = 4096
            let start = offset & ~(page - 1)
            let length = count + (offset - start)
            guard count > 0, offset + count <= size,
                  let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, off_t(start)), base != MAP_FAILED else {
                let bytes = try read(count: count, at: offset)
                guard bytes.count == count else {
                    throw MedprepError(.truncated, path: path, "file ends after \(offset + bytes.count) bytes, \(offset + count) needed.")
                }
                return try bytes.withUnsafeBytes(body)
            }
            defer { munmap(base, length) }
            _ = madvise(base, length, MADV_SEQUENTIAL)
            return try body(UnsafeRawBufferPointer(start: base + (offset - start), count: count))
        }

        public func read(count: Int, at offset: Int) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: max(0, min(count, size - offset)))
            let n = try out.withUnsafeMutableBytes { try read(into: $0, at: offset) }
            if n < out.count { out.removeSubrange(n...) }
            return out
        }
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Writes to `path.tmp-PID`, fsyncs, then renames over `path`: a killed run never
    /// leaves a file that looks complete. Refuses to replace an existing file unless `overwrite`.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, overwrite: Bool = true) throws {
        if !overwrite && exists(path) {
            throw MedprepError(.ioFailure, path: path, "already exists; refusing to overwrite it (use --force).")
        }
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw MedprepError(.ioFailure, path: path, "cannot create file: \(String(cString: strerror(errno))).")
        }
        var ok = false
        defer {
            if !ok { close(fd); unlink(tmp) }
        }
        var done = 0
        try bytes.withUnsafeBytes { buf in
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MedprepError(.ioFailure, path: path, "write failed: \(String(cString: strerror(errno))).")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw MedprepError(.ioFailure, path: path, "fsync failed: \(String(cString: strerror(errno))).") }
        ok = true
        close(fd)
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw MedprepError(.ioFailure, path: path, "rename failed: \(String(cString: strerror(errno))).")
        }
    }

    /// SHA-256 of a file's bytes, lower-case hex.
    public static func sha256(of bytes: [UInt8]) -> String { SHA256.hex(bytes) }
}

/// Text of a NUL-terminated C message buffer filled by the shim.
func cMessage(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
