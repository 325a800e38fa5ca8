/// How the decoder doubles the resolution.
public enum Upsampling: String, Codable, Sendable, CaseIterable {
    /// `UpSampling2D((2, 2))`, nearest neighbour, no parameters: the original tutorial.
    case nearest
    /// `Conv2DTranspose(f, (2, 2), strides=(2, 2))`: the later variant, with learned weights.
    case transpose
}

/// Everything about the U-Net's shape a user would vary. Two models with equal configurations
/// have the same parameters in the same places; checkpoints record it and refuse another.
public struct UNetConfiguration: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Input height and width, multiples of 2^depth (default 64 x 80, the tutorial's).
    public var rows: Int
    public var cols: Int
    /// Filters of the first level; level i has filters * 2^i (default 32: 32, 64, ..., 512).
    public var filters: Int
    /// Number of poolings (default 4).
    public var depth: Int
    public var upsample: Upsampling

    public init(rows: Int = 64, cols: Int = 80, filters: Int = 32, depth: Int = 4, upsample: Upsampling = .nearest) {
        self.rows = rows
        self.cols = cols
        self.filters = filters
        self.depth = depth
        self.upsample = upsample
    }

    /// A configuration error, said plainly.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Throws when the shape cannot be built.
    public func validate() throws {
        guard (1...8).contains(depth) else { throw Invalid(description: "depth must be between 1 and 8 (got \(depth))") }
        guard filters >= 1 else { throw Invalid(description: "filters must be at least 1 (got \(filters))") }
        let unit = 1 << depth
        guard rows >= unit, cols >= unit, rows % unit == 0, cols % unit == 0 else {
            throw Invalid(description: "rows \(rows) and cols \(cols) must be positive multiples of 2^depth = \(unit)"
                + " (depth \(depth) halves the image \(depth) times)")
        }
    }

    /// Filters at level i (i = depth is the bottom).
    public func filters(level i: Int) -> Int { filters << i }

    public var description: String {
        "rows=\(rows) cols=\(cols) filters=\(filters) depth=\(depth) upsample=\(upsample.rawValue)"
    }

    /// Field-by-field differences with `other`, for error messages ("filters 32 vs 16").
    public func differences(from other: UNetConfiguration) -> [String] {
        var d: [String] = []
        if rows != other.rows { d.append("rows \(rows) vs \(other.rows)") }
        if cols != other.cols { d.append("cols \(cols) vs \(other.cols)") }
        if filters != other.filters { d.append("filters \(filters) vs \(other.filters)") }
        if depth != other.depth { d.append("depth \(depth) vs \(other.depth)") }
        if upsample != other.upsample { d.append("upsample \(upsample.rawValue) vs \(other.upsample.rawValue)") }
        return d
    }
}
