import Dispatch
import Synchronization
import DataIO

/// The outline of a binary mask.
public enum Outline {
    /// The pixels of `mask` (row-major `height x width`, non-zero inside) that have at least one
    /// of their 4 neighbours (left, right, up, down) outside the mask. A neighbour beyond the
    /// image's edge counts as outside, so a mask that touches the edge is outlined along it too.
    /// Returns a row-major `height x width` array of 0 and 1.
    public static func of(_ mask: UnsafeBufferPointer<UInt8>, width: Int, height: Int) -> [UInt8] {
        precondition(width > 0 && height > 0 && mask.count == width * height,
                     "Outline: \(mask.count) mask pixels for \(width)x\(height)")
        return [UInt8](unsafeUninitializedCapacity: mask.count) { outline, initialized in
            for y in 0..<height {
                for x in 0..<width {
                    let i = y * width + x
                    let edge = mask[i] != 0
                        && (x == 0 || mask[i - 1] == 0 || x == width - 1 || mask[i + 1] == 0
                            || y == 0 || mask[i - width] == 0 || y == height - 1 || mask[i + width] == 0)
                    outline[i] = edge ? 1 : 0
                }
            }
            initialized = mask.count
        }
    }

    public static func of(_ mask: [UInt8], width: Int, height: Int) -> [UInt8] {
        mask.withUnsafeBufferPointer { of($0, width: width, height: height) }
    }
}

/// A grayscale image in colour with mask outlines drawn over it: the predicted outline in
/// `predictedColour`, the true one in `trueColour`, and pixels on both in `agreeingColour`
/// (green + red = yellow). Every other pixel keeps its gray level (r = g = b).
public enum Overlay {
    public static let predictedColour = RGB(0, 255, 0)
    public static let trueColour = RGB(255, 0, 0)
    public static let agreeingColour = RGB(255, 255, 0)

    /// `image` (row-major `height x width` gray levels) with the outlines (`Outline.of`) of
    /// `predicted` and `truth` (row-major `height x width`, non-zero inside; nil: not drawn).
    public static func draw(image: UnsafeBufferPointer<UInt8>, width: Int, height: Int,
                            predicted: UnsafeBufferPointer<UInt8>?, truth: UnsafeBufferPointer<UInt8>?) -> RGBImage {
        var picture = RGBImage(gray: image, width: width, height: height)
        let p = predicted.map { Outline.of($0, width: width, height: height) }
        let t = truth.map { Outline.of($0, width: width, height: height) }
        picture.pixels.withUnsafeMutableBufferPointer { rgb in
            for i in 0..<(width * height) {
                let onPredicted = p.map { $0[i] != 0 } ?? false, onTrue = t.map { $0[i] != 0 } ?? false
                guard onPredicted || onTrue else { continue }
                let colour = onPredicted && onTrue ? agreeingColour : onPredicted ? predictedColour : trueColour
                rgb[3 * i] = colour.r
                rgb[3 * i + 1] = colour.g
                rgb[3 * i + 2] = colour.b
            }
        }
        return picture
    }

    public static func draw(image: [UInt8], width: Int, height: Int,
                            predicted: [UInt8]?, truth: [UInt8]? = nil) -> RGBImage {
        image.withUnsafeBufferPointer { image in
            withOptionalBuffer(predicted) { predicted in
                withOptionalBuffer(truth) { truth in
                    draw(image: image, width: width, height: height, predicted: predicted, truth: truth)
                }
            }
        }
    }

    /// The same picture made smaller, to fit within `maxWidth x maxHeight` (the aspect ratio
    /// kept; never enlarged): the gray image is shrunk by area averaging (`Resize`, as the
    /// model's input) and each mask likewise, a pixel set where at least half of what it covers
    /// is, and the outlines are drawn at the small size. So they stay one pixel wide and keep
    /// their colours, where shrinking a finished overlay would blend them into the gray.
    public static func drawReduced(image: [UInt8], width: Int, height: Int, predicted: [UInt8]?, truth: [UInt8]?,
                                   maxWidth: Int, maxHeight: Int) -> RGBImage {
        precondition(maxWidth > 0 && maxHeight > 0)
        let scale = min(1, Double(maxWidth) / Double(width), Double(maxHeight) / Double(height))
        let w = max(1, Int((Double(width) * scale).rounded())), h = max(1, Int((Double(height) * scale).rounded()))
        func shrink(_ pixels: [UInt8]) -> [Float] {
            var out = [Float](repeating: 0, count: w * h)
            pixels.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    Resize.resize(p, count: 1, height: height, width: width, outHeight: h, outWidth: w, into: o)
                }
            }
            return out
        }
        func shrinkMask(_ mask: [UInt8]) -> [UInt8] {
            shrink(mask.map { $0 != 0 ? 1 : 0 }).map { $0 >= 0.5 ? 1 : 0 }
        }
        let gray = shrink(image).map { UInt8(min(max($0.rounded(), 0), 255)) }
        return draw(image: gray, width: w, height: h, predicted: predicted.map(shrinkMask), truth: truth.map(shrinkMask))
    }

    private static func withOptionalBuffer<R>(_ array: [UInt8]?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let array else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0) }
    }
}

/// Writing many pictures at once.
public enum Pictures {
    /// Runs `body(i)` for every `i` in `0..<count` on `threads` threads (libpng's simplified API
    /// keeps no shared state between images). After an error the threads start no new index
    /// (a full disk or a read-only folder fails every file the same way); the error of the
    /// lowest index that failed is thrown once all have stopped.
    public static func forEach(_ count: Int, threads: Int, _ body: @Sendable (Int) throws -> Void) throws {
        guard count > 0 else { return }
        let errors = Mutex<[Int: any Error]>([:])
        let failed = Atomic<Bool>(false)
        let workers = max(1, min(threads, count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for i in stride(from: worker, to: count, by: workers) {
                if failed.load(ordering: .relaxed) { return }
                do { try body(i) } catch {
                    errors.withLock { $0[i] = error }
                    failed.store(true, ordering: .relaxed)
                }
            }
        }
        if let first = errors.withLock({ $0.min(by: { $0.key < $1.key })?.value }) { throw first }
    }
}
