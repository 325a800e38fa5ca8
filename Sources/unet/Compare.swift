import ArgumentParser
import Checkpoint
import Training
import DataIO
import Foundation
import Model

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two checkpoints' weights (with --state, Adam's state too).",
        discussion: """
            Reads:  two checkpoints: A written by `unet train`, B by `unet train`
                    or a Keras weights file of the same model. Both must have
                    the same configuration (rows, cols, filters, depth,
                    upsample), else one line naming the fields that differ.
                    Writes nothing.
            Prints: per layer with weights, its number of values, the largest
                    absolute difference max|A-B|, the largest relative one
                    (max|A-B| over the layer's largest |weight| in A or B) and
                    how many values differ at all (bit for bit); then the same
                    over all weights. With --state also Adam's moments m and v,
                    the Adam step and the epoch.
            Exit:   0 when max|A-B| <= --tolerance over all that is compared
                    (with --state the Adam step and epoch must be equal too);
                    1 otherwise, with one line on stderr saying what differs.
                    --tolerance 0 asks for bit-identical values.

            A 1-rank and a 2-rank run of the same training differ only by the
            order of float32 sums (gradients are summed over ranks): expect
            about 1e-7 after an epoch, hence 1e-5 or 1e-4. An exact resume is
            bit-identical.

            Examples:
              unet compare one.h5 two.h5 --tolerance 1e-4
              unet compare straight.last.h5 resumed.last.h5 --tolerance 0 --state
            """
    )

    @Argument(help: ArgumentHelp("The first checkpoint (written by `unet train`).", valueName: "A.h5")) var a: String
    @Argument(help: ArgumentHelp("The second checkpoint, of the same model configuration.", valueName: "B.h5")) var b: String
    @Option(help: "Largest absolute difference allowed (0: bit-identical).") var tolerance: Double = 1e-5
    @Flag(help: "Also compare the training state: Adam's m and v, the Adam step and the epoch.") var state = false

    func validate() throws {
        guard tolerance.isFinite, tolerance >= 0 else { throw ValidationError("--tolerance must be a finite number >= 0") }
    }

    func run() throws {
        do {
            let verdict = try compare()
            print(verdict.summary)
            if let failure = verdict.failure {
                fflushStdout()
                Terminal.writeError("error: \(failure)\n")
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Terminal.fail(error)
        }
    }

    struct Verdict { var summary: String; var failure: String? }

    func compare() throws -> Verdict {
        let first = try Checkpoint.read(from: a)
        // Reading B as "expecting A's configuration" refuses another model in one line naming
        // the fields that differ, and imports a Keras weights-only file of the same model.
        let second = try Checkpoint.read(from: b, expecting: first.configuration)
        let config = first.configuration
        var states: (TrainingState, TrainingState)? = nil
        if state {
            guard let s = first.state else { throw DataError(a, "has no training state (weights only): compare it without --state") }
            guard let t = second.state else { throw DataError(b, "has no training state (weights only): compare it without --state") }
            states = (s, t)
        }

        // The parameter table's kernel and bias of each layer, grouped by layer in table order.
        var layers: [(name: String, range: Range<Int>)] = []
        for view in config.parameterTable {
            let range = view.offset..<(view.offset + view.count)
            if let last = layers.last, last.name == view.layer {
                layers[layers.count - 1].range = last.range.lowerBound..<range.upperBound
            } else {
                layers.append((view.layer, range))
            }
        }

        var lines = [
            "A: \(a)\(Self.describe(first.state))",
            "B: \(b)\(Self.describe(second.state))",
            "model: \(config), \(config.parameterCount) parameters",
            Self.row("", "values", "max |A-B|", "max rel", "differing"),
        ]
        for layer in layers {
            let d = Difference(first.parameters, second.parameters, layer.range)
            lines.append(Self.row(layer.name, "\(layer.range.count)", d))
        }
        var failures: [String] = []
        func check(_ what: String, _ x: [Float], _ y: [Float]) {
            let d = Difference(x, y, 0..<x.count)
            let location = d.differing > 0 ? "  (largest in \(Self.layer(at: d.argmax, layers)))" : ""
            lines.append(Self.row(what, "\(x.count)", d) + location)
            if !d.within(tolerance) {
                failures.append(tolerance == 0
                    ? "\(what): \(d.differing) of \(x.count) values differ (max |A-B| \(Self.e(d.maxAbs)) in \(Self.layer(at: d.argmax, layers))), --tolerance 0 asks for bit-identical"
                    : "\(what) differ by up to \(Self.e(d.maxAbs)) (in \(Self.layer(at: d.argmax, layers))) > tolerance \(Self.e(tolerance))")
            }
        }
        check("weights", first.parameters, second.parameters)
        if let (s, t) = states {
            check("adam m", s.adamM, t.adamM)
            check("adam v", s.adamV, t.adamV)
            lines.append(Self.row("adam step", "\(s.adamStep) vs \(t.adamStep)", "", "", ""))
            lines.append(Self.row("epoch", "\(s.epoch) vs \(t.epoch)", "", "", ""))
            if s.adamStep != t.adamStep { failures.append("adam step \(s.adamStep) vs \(t.adamStep)") }
            if s.epoch != t.epoch { failures.append("epoch \(s.epoch) vs \(t.epoch)") }
        }
        let compared = state ? "weights and training state" : "weights"
        if failures.isEmpty {
            lines.append(tolerance == 0 ? "same: \(compared) bit-identical"
                                        : "same: \(compared) within tolerance \(Self.e(tolerance))")
        } else {
            lines.append("DIFFERENT: \(compared) beyond tolerance \(Self.e(tolerance))")
        }
        return Verdict(summary: lines.joined(separator: "\n"), failure: failures.isEmpty ? nil : failures.joined(separator: "; "))
    }

    /// Max absolute and relative difference of two buffers over `range`, and how many values
    /// differ bit for bit. A NaN against anything but the same NaN counts as an infinite difference.
    struct Difference {
        var maxAbs = 0.0, scale = 0.0, differing = 0, argmax = 0

        init(_ x: [Float], _ y: [Float], _ range: Range<Int>) {
            for i in range {
                let (p, q) = (x[i], y[i])
                scale = max(scale, p.isFinite ? Double(abs(p)) : 0, q.isFinite ? Double(abs(q)) : 0)
                guard p.bitPattern != q.bitPattern else { continue }
                differing += 1
                let d = p.isNaN || q.isNaN ? Double.infinity : abs(Double(p) - Double(q))
                if d > maxAbs || differing == 1 { (maxAbs, argmax) = (d, i) }
            }
        }

        /// max|A-B| relative to the largest magnitude in either buffer (0 when both are all zero).
        var maxRelative: Double { maxAbs == 0 ? 0 : scale > 0 ? maxAbs / scale : .infinity }

        func within(_ tolerance: Double) -> Bool { tolerance == 0 ? differing == 0 : maxAbs <= tolerance }
    }

    static func describe(_ state: TrainingState?) -> String {
        state.map { " (epoch \($0.epoch), Adam step \($0.adamStep))" } ?? " (weights only)"
    }

    static func layer(at index: Int, _ layers: [(name: String, range: Range<Int>)]) -> String {
        layers.first { $0.range.contains(index) }?.name ?? "?"
    }

    static func e(_ x: Double) -> String { x == 0 ? "0" : String(format: "%.3e", x) }

    static func row(_ name: String, _ count: String, _ d: Difference) -> String {
        row(name, count, e(d.maxAbs), e(d.maxRelative), "\(d.differing)")
    }

    static func row(_ name: String, _ count: String, _ abs: String, _ rel: String, _ differing: String) -> String {
        func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - s.count))
            return left ? s + fill : fill + s
        }
        let line = pad(name, 18, left: true) + pad(count, 10) + pad(abs, 12) + pad(rel, 12) + pad(differing, 11)
        return String(line.reversed().drop { $0 == " " }.reversed())
    }
}
