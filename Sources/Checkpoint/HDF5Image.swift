import CHDF5

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An HDF5 file built entirely in memory, so that HDF5 never touches the disk when a checkpoint
/// is written: every byte then goes to disk through `DurableFile`, whose failures (a full disk,
/// a read-only folder, a short write) are reported exactly, with `strerror`'s text, and never
/// leave HDF5 half-way through closing a file.
///
/// HDF5's core driver (no backing store) holds the file; its buffer is allocated through file
/// image callbacks (`H5Pset_file_image_callbacks`) that hand it over to this object when HDF5
/// closes the file instead of freeing it, so the image is not copied (the checkpoint costs its
/// own size in memory while it is written, once).
///
/// `userBlock` bytes at the start of the image are left for the caller (zero-filled): HDF5
/// places its superblock after them (`H5Pset_userblock`), and every HDF5 reader skips them.
final class HDF5Image {
    /// The image: `length` bytes from `base` (nil when empty).
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var length = 0

    private let buffer = Buffer()

    /// The memory the core driver grows with `realloc`; HDF5 owns it until the file is closed.
    private final class Buffer {
        var pointer: UnsafeMutableRawPointer?
        var capacity = 0
        /// Whether HDF5 still uses the memory (until `image_free` with `FILE_CLOSE`).
        var heldByHDF5 = false

        deinit {
            // After a failed close HDF5 may still hold the buffer: leaking it is the safe choice.
            if !heldByHDF5 { free(pointer) }
        }
    }

    /// Builds an image: creates an in-memory HDF5 file named `name` (for HDF5's own messages),
    /// lets `body` fill it, closes it, and keeps its bytes. Throws `HDF5Problem`s.
    init(name: String, userBlock: Int, increment: Int = 1 << 20, _ body: (hid_t) throws -> Void) throws {
        let fcpl = try H5.check(H5Pcreate(chdf5_p_file_create()), "cannot create a file creation property list")
        defer { H5.closeList(fcpl) }
        let fapl = try H5.check(H5Pcreate(chdf5_p_file_access()), "cannot create a file access property list")
        defer { H5.closeList(fapl) }
        if userBlock > 0 {
            try H5.check(H5Pset_userblock(fcpl, hsize_t(userBlock)), "cannot set a \(userBlock)-byte user block")
        }
        try H5.check(H5Pset_fapl_core(fapl, increment, false), "cannot select HDF5's in-memory driver")
        var callbacks = H5FD_file_image_callbacks_t(
            image_malloc: { size, _, udata in
                let buffer = Unmanaged<Buffer>.fromOpaque(udata!).takeUnretainedValue()
                // (Not called for a new file, which grows from nothing through `image_realloc`.)
                guard let memory = malloc(max(size, 1)) else { return nil }
                (buffer.pointer, buffer.capacity, buffer.heldByHDF5) = (memory, size, true)
                return memory
            },
            image_memcpy: { destination, source, size, _, _ in memcpy(destination!, source!, size) },
            image_realloc: { pointer, size, _, udata in
                let buffer = Unmanaged<Buffer>.fromOpaque(udata!).takeUnretainedValue()
                guard let memory = realloc(pointer, max(size, 1)) else { return nil }
                (buffer.pointer, buffer.capacity, buffer.heldByHDF5) = (memory, size, true)
                return memory
            },
            image_free: { pointer, operation, udata in
                let buffer = Unmanaged<Buffer>.fromOpaque(udata!).takeUnretainedValue()
                if operation == H5FD_FILE_IMAGE_OP_FILE_CLOSE, pointer == buffer.pointer {
                    buffer.heldByHDF5 = false  // handed over: kept for the caller
                } else {
                    if pointer == buffer.pointer { (buffer.pointer, buffer.capacity) = (nil, 0) }
                    free(pointer)
                }
                return 0
            },
            // HDF5 copies the property list (and so `udata`) when the file is created; every copy
            // is the same unretained pointer, valid as long as `self`.
            udata_copy: { $0 },
            udata_free: { _ in 0 },
            udata: Unmanaged.passUnretained(buffer).toOpaque())
        try H5.check(H5Pset_file_image_callbacks(fapl, &callbacks), "cannot set HDF5's file image callbacks")

        let file = H5Fcreate(name, chdf5_acc_trunc(), fcpl, fapl)
        guard file >= 0 else { throw HDF5Problem("cannot create an HDF5 file in memory: \(H5.lastError())") }
        do {
            try body(file)
        } catch {
            H5Fclose(file)
            throw error
        }
        try H5.check(H5Fclose(file), "cannot finish the HDF5 file")
        guard !buffer.heldByHDF5, let pointer = buffer.pointer else {
            throw HDF5Problem("HDF5 did not hand over the file image it built")
        }
        // The core driver's buffer is a multiple of `increment`; the file ends where its
        // superblock says (HDF5 may shrink the end of the file while closing it).
        let image = UnsafeRawBufferPointer(start: pointer, count: buffer.capacity)
        guard let (location, end) = H5.superblockEnd(image), location == userBlock, end <= buffer.capacity else {
            throw HDF5Problem("the HDF5 image built in memory has no superblock after its \(userBlock)-byte user block")
        }
        (base, length) = (pointer, end)
    }

    /// The image's bytes (mutable: the caller fills the user block).
    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: length) }
}

extension H5 {
    static func closeList(_ list: hid_t) {
        H5Pclose(list)
    }
}
