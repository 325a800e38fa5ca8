#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A line chart of figures per epoch, as inline SVG for `unet report`: one `<polyline>` per
/// series with exactly one point per epoch that has a finite value, each marked
/// `class="series" data-series="<name>"` (the metrics log's column name), axes with tick labels,
/// a legend, and optionally a dashed vertical line at one epoch (the checkpoint's). The SVG is
/// well-formed XML, so the page stays XHTML-compatible.
struct EpochChart {
    struct Series {
        /// The column of the metrics log (`loss`, `val_dice`, ...): the polyline's `data-series`.
        var name: String
        var colour: String
        /// (epoch, value) in epoch order; non-finite values are left out.
        var points: [(epoch: Int, value: Double)]
    }

    /// What the chart shows (its accessible name).
    var title: String
    var yLabel: String
    var series: [Series]
    /// A dashed vertical line at this epoch, labelled.
    var marker: (epoch: Int, label: String)?
    var width = 560, height = 300

    // The plot area inside the margins (room for the legend above, tick labels left and below).
    private let left = 64.0, right = 18.0, top = 36.0, bottom = 42.0

    func svg() -> String {
        let series = self.series.map { s in Series(name: s.name, colour: s.colour, points: s.points.filter { $0.value.isFinite }) }
            .filter { !$0.points.isEmpty }
        let epochs = series.flatMap { $0.points.map(\.epoch) }
        let values = series.flatMap { $0.points.map(\.value) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" aria-label=\"\(HTML.escape(title))\""
            + " viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\">\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>\n"
        guard let firstEpoch = epochs.min(), let lastEpoch = epochs.max(), let low = values.min(), let high = values.max() else {
            out += "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\" class=\"empty\">no epochs to plot</text>\n</svg>"
            return out
        }
        let plotWidth = Double(width) - left - right, plotHeight = Double(height) - top - bottom
        // x: the epochs (one epoch sits in the middle); y: nice ticks around the values.
        let (x0, x1) = firstEpoch == lastEpoch ? (Double(firstEpoch) - 0.5, Double(lastEpoch) + 0.5)
                                              : (Double(firstEpoch), Double(lastEpoch))
        let y = Self.niceScale(low, high)
        func px(_ epoch: Double) -> Double { left + (epoch - x0) / (x1 - x0) * plotWidth }
        func py(_ value: Double) -> Double { top + (y.high - value) / (y.high - y.low) * plotHeight }
        func f(_ v: Double) -> String { Self.coordinate(v) }

        // Grid lines and y tick labels.
        out += "<g class=\"y-axis\" font-size=\"11\" fill=\"#555555\">\n"
        for tick in y.ticks {
            let at = f(py(tick))
            out += "<line x1=\"\(f(left))\" y1=\"\(at)\" x2=\"\(f(left + plotWidth))\" y2=\"\(at)\" stroke=\"#e4e4e4\"/>"
            out += "<text x=\"\(f(left - 6))\" y=\"\(at)\" dy=\"4\" text-anchor=\"end\">\(Self.label(tick, step: y.step))</text>\n"
        }
        out += "<text transform=\"translate(14 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(HTML.escape(yLabel))</text>\n"
        out += "</g>\n"
        // x ticks: whole epochs, a nice step apart.
        let step = max(1, Int(Self.niceStep(Double(lastEpoch - firstEpoch) / 8)))
        out += "<g class=\"x-axis\" font-size=\"11\" fill=\"#555555\">\n"
        for epoch in stride(from: (firstEpoch + step - 1) / step * step, through: lastEpoch, by: step) {
            let at = f(px(Double(epoch)))
            out += "<line x1=\"\(at)\" y1=\"\(f(top + plotHeight))\" x2=\"\(at)\" y2=\"\(f(top + plotHeight + 4))\" stroke=\"#555555\"/>"
            out += "<text x=\"\(at)\" y=\"\(f(top + plotHeight + 17))\" text-anchor=\"middle\">\(epoch)</text>\n"
        }
        out += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(height - 6)\" text-anchor=\"middle\">epoch</text>\n</g>\n"
        // The axes.
        out += "<path d=\"M\(f(left)) \(f(top)) V\(f(top + plotHeight)) H\(f(left + plotWidth))\" fill=\"none\" stroke=\"#555555\"/>\n"
        if let marker, (firstEpoch...lastEpoch).contains(marker.epoch) {
            // The line across the plot; its label in the legend's row, at the right (where no
            // series runs under it).
            let at = f(px(Double(marker.epoch))), end = left + plotWidth
            out += "<g class=\"marker\" stroke=\"#888888\" stroke-dasharray=\"4 3\">"
                + "<line x1=\"\(at)\" y1=\"\(f(top))\" x2=\"\(at)\" y2=\"\(f(top + plotHeight))\"/>"
                + "<line x1=\"\(f(end))\" y1=\"10\" x2=\"\(f(end))\" y2=\"24\"/>"
                + "<text x=\"\(f(end - 6))\" y=\"20\" font-size=\"12\" fill=\"#555555\" stroke=\"none\" text-anchor=\"end\">"
                + "\(HTML.escape(marker.label))</text></g>\n"
        }
        // The series: a polyline each (one point per epoch), and dots with the value on hover
        // when there are few enough to tell apart.
        for s in series {
            let points = s.points.map { "\(f(px(Double($0.epoch)))),\(f(py($0.value)))" }.joined(separator: " ")
            out += "<polyline class=\"series\" data-series=\"\(HTML.escape(s.name))\" fill=\"none\" stroke=\"\(s.colour)\""
                + " stroke-width=\"2\" stroke-linejoin=\"round\" points=\"\(points)\"/>\n"
            if s.points.count <= 60 {
                out += "<g class=\"points\" fill=\"\(s.colour)\">"
                for p in s.points {
                    out += "<circle cx=\"\(f(px(Double(p.epoch))))\" cy=\"\(f(py(p.value)))\" r=\"2.5\">"
                        + "<title>epoch \(p.epoch): \(HTML.escape(s.name)) \(Self.value(p.value))</title></circle>"
                }
                out += "</g>\n"
            }
        }
        // The legend, above the plot.
        out += "<g class=\"legend\" font-size=\"12\" fill=\"#333333\">\n"
        var x = left
        for s in series {
            out += "<line x1=\"\(f(x))\" y1=\"16\" x2=\"\(f(x + 18))\" y2=\"16\" stroke=\"\(s.colour)\" stroke-width=\"3\"/>"
            out += "<text x=\"\(f(x + 24))\" y=\"20\">\(HTML.escape(s.name))</text>\n"
            x += 24 + 7.2 * Double(s.name.count) + 18
        }
        out += "</g>\n</svg>"
        return out
    }

    /// Ticks 1, 2 or 5 times a power of ten apart, covering `low...high` in about 5 steps.
    static func niceScale(_ low: Double, _ high: Double) -> (low: Double, high: Double, step: Double, ticks: [Double]) {
        var (low, high) = (low, high)
        if high - low < 1e-12 {
            // One value (or all equal): a small range around it.
            let pad = max(abs(low) * 0.05, 1e-3)
            (low, high) = (low - pad, high + pad)
        }
        let step = niceStep((high - low) / 5)
        let first = (low / step).rounded(.down), last = (high / step).rounded(.up)
        let ticks = stride(from: first, through: last, by: 1).map { $0 * step }
        return (first * step, last * step, step, ticks)
    }

    /// The number 1, 2 or 5 times a power of ten nearest above `raw` (1 for nothing).
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude
    }

    /// A tick label with the decimals its step needs (never "-0").
    static func label(_ value: Double, step: Double) -> String {
        let decimals = max(0, -Int(log10(step).rounded(.down)))
        let text = String(format: "%.\(decimals)f", value)
        return Double(text) == 0 ? String(format: "%.\(decimals)f", 0.0) : text
    }

    /// A value for a tooltip.
    static func value(_ v: Double) -> String { String(format: abs(v) >= 1000 ? "%.1f" : "%.4f", v) }

    /// An SVG coordinate: one decimal is finer than a screen pixel.
    static func coordinate(_ v: Double) -> String {
        let text = String(format: "%.1f", v)
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }
}

/// Text for HTML (and XML) content and attribute values.
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
