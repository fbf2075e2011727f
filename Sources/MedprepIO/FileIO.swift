#if canImport(Glibc)
import Glibc
#endif
import CMedprep
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
        try replaceAtomically(path, overwrite: overwrite, direct: false, refusal: .none) { fd, _ in
            try bytes.withUnsafeBytes { try writeAll(fd, $0.baseAddress, count: $0.count, path: path) }
        }
    }

    /// How a file was written: straight from the caller's memory to the device, or through the page cache.
    public enum WriteMethod: Sendable, Equatable { case direct, buffered }

    /// Stand-ins for filesystems that refuse O_DIRECT (tests): at open, or at the first write.
    enum DirectRefusal { case none, atOpen, atWrite }

    /// `writeAtomically` for the first `count` bytes of an aligned buffer, written with O_DIRECT:
    /// the kernel takes the bytes straight from `buffer`, without copying them into the page
    /// cache and writing them back later (for shards that was most of convert's system time).
    /// Whole blocks are written (the buffer's capacity is a multiple of 4096) and the file is then
    /// cut to `count`. Where O_DIRECT is refused (EINVAL at open or at a write: tmpfs on older
    /// kernels, some overlay and network filesystems) the rest goes through ordinary writes; the
    /// bytes are the same either way.
    @discardableResult
    public static func writeAtomically(_ buffer: AlignedBuffer, count: Int, to path: String, overwrite: Bool = true) throws -> WriteMethod {
        try writeAtomically(buffer, count: count, to: path, overwrite: overwrite, refusal: .none)
    }

    static func writeAtomically(_ buffer: AlignedBuffer, count: Int, to path: String, overwrite: Bool,
                                refusal: DirectRefusal) throws -> WriteMethod {
        precondition(count >= 0 && count <= buffer.capacity, "count \(count) is outside the buffer's \(buffer.capacity) bytes")
        var method = WriteMethod.buffered
        try replaceAtomically(path, overwrite: overwrite, direct: true, refusal: refusal) { fd, direct in
            var done = 0
            if direct {
                let whole = AlignedBuffer.roundUp(count)
                (buffer.base + count).initializeMemory(as: UInt8.self, repeating: 0, count: whole - count)  // block padding, cut off below
                var refused = refusal == .atWrite
                while done < whole && !refused {
                    let n = write(fd, buffer.base + done, whole - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        guard errno == EINVAL else {
                            throw MedprepError(.ioFailure, path: path, "write failed: \(String(cString: strerror(errno))).")
                        }
                        refused = true
                    } else {
                        done += n
                    }
                }
                if refused {
                    // Back to the page cache for the rest (a short write may have left `done` unaligned).
                    let flags = fcntl(fd, F_GETFL)
                    guard flags >= 0, fcntl(fd, F_SETFL, flags & ~mp_o_direct_flag()) == 0 else {
                        throw MedprepError(.ioFailure, path: path, "cannot turn off O_DIRECT: \(String(cString: strerror(errno))).")
                    }
                } else {
                    method = .direct
                }
            }
            if done < count { try writeAll(fd, buffer.base + done, count: count - done, path: path) }
            if done > count && ftruncate(fd, off_t(count)) != 0 {
                throw MedprepError(.ioFailure, path: path, "cannot set the file's length: \(String(cString: strerror(errno))).")
            }
        }
        return method
    }

    /// The temporary-name, fsync, rename protocol around `fill`, which writes the file's bytes to
    /// the descriptor it is given (opened with O_DIRECT when `direct` and the filesystem allows
    /// it, told by its second argument). The temporary file is removed when anything fails.
    private static func replaceAtomically(_ path: String, overwrite: Bool, direct: Bool, refusal: DirectRefusal,
                                          _ fill: (_ fd: Int32, _ direct: Bool) throws -> Void) throws {
        if !overwrite && exists(path) {
            throw MedprepError(.ioFailure, path: path, "already exists; refusing to overwrite it (use --force).")
        }
        let tmp = "\(path).tmp-\(getpid())"
        let flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
        let directFlag = mp_o_direct_flag()
        var isDirect = direct && directFlag != 0
        var fd: Int32 = -1
        if isDirect {
            fd = refusal == .atOpen ? -1 : open(tmp, flags | directFlag, 0o644)
            let e = refusal == .atOpen ? EINVAL : errno
            if fd < 0 {
                guard e == EINVAL else {
                    throw MedprepError(.ioFailure, path: path, "cannot create file: \(String(cString: strerror(e))).")
                }
                isDirect = false  // this filesystem does not do O_DIRECT: through the page cache
            }
        }
        if fd < 0 { fd = open(tmp, flags, 0o644) }
        guard fd >= 0 else {
            throw MedprepError(.ioFailure, path: path, "cannot create file: \(String(cString: strerror(errno))).")
        }
        var ok = false
        defer {
            if !ok { close(fd); unlink(tmp) }
        }
        try fill(fd, isDirect)
        guard fsync(fd) == 0 else { throw MedprepError(.ioFailure, path: path, "fsync failed: \(String(cString: strerror(errno))).") }
        ok = true
        close(fd)
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw MedprepError(.ioFailure, path: path, "rename failed: \(String(cString: strerror(errno))).")
        }
    }

    /// Writes `count` bytes from `start`, retrying short writes and EINTR.
    private static func writeAll(_ fd: Int32, _ start: UnsafeRawPointer?, count: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = write(fd, start! + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw MedprepError(.ioFailure, path: path, "write failed: \(String(cString: strerror(errno))).")
            }
            done += n
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
