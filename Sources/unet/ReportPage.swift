import Checkpoint
import Training
import Foundation
import Model

/// The page `unet report` writes: one HTML file with nothing outside it (the style inline, the
/// curves as inline SVG, the pictures as `data:` URIs), written so that it is also well-formed
/// XML (XHTML-compatible: every element closed, only XML's entities), which the tests parse.
struct ReportPage {
    var checkpointPath: String
    /// The checkpoint's size in bytes.
    var checkpointBytes: Int
    var checkpoint: Checkpoint
    /// The run's epochs, from the metrics log (or the checkpoint's history without one).
    var records: [EpochRecord]
    /// Where `records` come from, said in a few words.
    var metricsSource: String
    /// Things the reader should know (a log that disagrees with the checkpoint, a row cut short).
    var notes: [String] = []
    /// The validation overlays (with `--data`), worst first.
    var grid: ReportGrid?
    /// Without `--data`: the command that adds the grid.
    var gridCommand: String

    private var hasValidation: Bool { records.contains { $0.valLoss != nil } }

    func html() -> String {
        var page = """
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="utf-8"/>
            <meta name="viewport" content="width=device-width, initial-scale=1"/>
            <meta name="generator" content="unet report (UNetTrainer \(UNetTool.configuration.version))"/>
            <title>U-Net training report: \(HTML.escape(checkpointPath))</title>
            <style>\(Self.style)</style>
            </head>
            <body>
            <header>
            <h1>U-Net training report</h1>
            <p class="subtitle"><code>\(HTML.escape(checkpointPath))</code> · \(HTML.escape(modelSummary))</p>
            </header>

            """
        page += tiles()
        if !notes.isEmpty {
            page += "<ul class=\"notes\">\n" + notes.map { "<li>\(HTML.escape($0))</li>\n" }.joined() + "</ul>\n"
        }
        page += curves()
        page += "<div class=\"columns\">\n" + configuration() + throughput() + "</div>\n"
        page += overlays()
        page += epochTable()
        page += """
            <footer>Written by <code>unet report</code> (UNetTrainer \(UNetTool.configuration.version)) from \
            <code>\(HTML.escape(checkpointPath))</code> and \(HTML.escape(metricsSource)). The page is self-contained: \
            the curves are inline SVG, the pictures embedded PNG.</footer>
            </body>
            </html>

            """
        return page
    }

    // MARK: Sections

    private var modelSummary: String {
        let c = checkpoint.configuration
        return "\(c.rows)x\(c.cols) input, \(c.filters) filters, depth \(c.depth), \(c.upsample.rawValue) upsampling,"
            + " \(grouped(c.parameterCount)) parameters"
    }

    /// The figures to see at a glance.
    private func tiles() -> String {
        var tiles: [(label: String, value: String, detail: String)] = []
        let state = checkpoint.state
        tiles.append(("epochs", "\(records.last?.epoch ?? state?.epoch ?? 0)",
                      state.map { "checkpoint at epoch \($0.epoch)" } ?? "weights only"))
        if hasValidation {
            if let best = records.filter({ $0.valLoss?.isFinite == true }).min(by: { $0.valLoss! < $1.valLoss! }) {
                tiles.append(("best val_loss", fixed(best.valLoss), "epoch \(best.epoch)"))
            }
            if let best = records.filter({ $0.valDice?.isFinite == true }).max(by: { $0.valDice! < $1.valDice! }) {
                tiles.append(("best val_dice", fixed(best.valDice), "epoch \(best.epoch)"))
            }
            // The Kaggle score of the weights described: the checkpoint's epoch (else the last).
            if let at = records.first(where: { $0.epoch == state?.epoch && $0.valKaggle != nil })
                ?? records.last(where: { $0.valKaggle != nil }) {
                let whose = at.epoch == state?.epoch ? ", \(fileName(checkpointPath))" : ""
                tiles.append(("val_kaggle_score", fixed(at.valKaggle), "epoch \(at.epoch)\(whose)"))
            }
        } else if let best = records.filter({ $0.loss.isFinite }).min(by: { $0.loss < $1.loss }) {
            tiles.append(("best loss", fixed(best.loss), "epoch \(best.epoch), no validation set"))
            tiles.append(("dice", fixed(best.dice), "epoch \(best.epoch)"))
        }
        if !records.isEmpty {
            tiles.append(("images/s", String(format: "%.1f", median(records.map(\.imagesPerSecond))), "median of the epochs"))
            tiles.append(("time", shortDuration(records.map(\.seconds).reduce(0, +)), "training and validation"))
        }
        return "<section class=\"tiles\">\n" + tiles.map {
            "<div class=\"tile\"><div class=\"label\">\(HTML.escape($0.label))</div>"
                + "<div class=\"value\">\(HTML.escape($0.value))</div><div class=\"detail\">\(HTML.escape($0.detail))</div></div>\n"
        }.joined() + "</section>\n"
    }

    /// Loss and Dice per epoch, training and validation.
    private func curves() -> String {
        let marker = checkpoint.state.map { (epoch: $0.epoch, label: "\(fileName(checkpointPath)) (epoch \($0.epoch))") }
        func points(_ value: (EpochRecord) -> Double?) -> [(epoch: Int, value: Double)] {
            records.compactMap { r in value(r).map { (r.epoch, $0) } }
        }
        let loss = EpochChart(title: "loss and val_loss per epoch", yLabel: "loss (-Dice)", series: [
            .init(name: "loss", colour: Self.blue, points: points { $0.loss }),
            .init(name: "val_loss", colour: Self.orange, points: points { $0.valLoss }),
        ], marker: marker)
        let dice = EpochChart(title: "dice, val_dice and val_kaggle_score per epoch", yLabel: "Dice", series: [
            .init(name: "dice", colour: Self.blue, points: points { $0.dice }),
            .init(name: "val_dice", colour: Self.orange, points: points { $0.valDice }),
            .init(name: "val_kaggle_score", colour: Self.green, points: points { $0.valKaggle }),
        ], marker: marker)
        var text = "<section id=\"curves\">\n<h2>Loss and Dice</h2>\n"
        if records.isEmpty {
            text += "<p>No epoch yet: \(HTML.escape(metricsSource)) holds none.</p>\n</section>\n"
            return text
        }
        text += "<div class=\"charts\">\n<figure>\(loss.svg())<figcaption>Loss per epoch: -Dice over each batch"
            + " (smooth 1), the mean over the epoch's batches; val_loss over the validation subjects.</figcaption></figure>\n"
        text += "<figure>\(dice.svg())<figcaption>Dice per epoch; val_kaggle_score: the mean per-image Dice of the"
            + " masks thresholded at 0.5 (1 when both are empty), as Kaggle scores.</figcaption></figure>\n</div>\n"
        if let marker {
            text += "<p class=\"hint\">The dashed line marks \(HTML.escape(marker.label)), the weights this report describes.</p>\n"
        }
        return text + "</section>\n"
    }

    /// What the checkpoint says of the model and the run.
    private func configuration() -> String {
        let c = checkpoint.configuration
        var rows: [(String, String)] = [
            ("checkpoint", "\(checkpointPath) (\(bytes(checkpointBytes)))"),
            ("metrics", metricsSource),
            ("input (rows x cols)", "\(c.rows) x \(c.cols)"),
            ("filters", "\(c.filters) (first level; doubled at each of \(c.depth) levels)"),
            ("depth", "\(c.depth) poolings"),
            ("upsampling", c.upsample == .nearest ? "nearest (UpSampling2D)" : "transpose (Conv2DTranspose)"),
            ("parameters", grouped(c.parameterCount)),
        ]
        if let s = checkpoint.state {
            var epoch = "\(s.epoch)"
            if s.epochStep > 0 { epoch += " (stopped in epoch \(s.epoch + 1) after step \(s.epochStep))" }
            rows.append(("epochs completed", epoch))
            var steps = grouped(s.adamStep)
            if s.epoch > 0 && s.epochStep == 0 && s.adamStep % s.epoch == 0 {
                steps += " (\(s.adamStep / s.epoch) per epoch)"
            }
            rows.append(("Adam steps", steps))
            rows.append(("learning rate", "\(s.learningRate)"))
            rows.append(("normalisation", String(format: "(pixel - %.4f) / %.4f", s.mean, s.std)))
            rows.append(("seed", "\(s.seed)"))
            if let best = s.bestScore {
                rows.append(("best score", fixed(best) + (hasValidation ? " (val_loss)" : " (loss)")))
            }
        } else {
            rows.append(("training state", "none (weights only)"))
        }
        return "<section id=\"configuration\">\n<h2>Configuration</h2>\n" + table(rows) + "</section>\n"
    }

    /// Images per second per epoch.
    private func throughput() -> String {
        var text = "<section id=\"throughput\">\n<h2>Throughput</h2>\n"
        guard !records.isEmpty else { return text + "<p>No epoch yet.</p>\n</section>\n" }
        let rates = records.map(\.imagesPerSecond), seconds = records.map(\.seconds)
        let total = seconds.reduce(0, +)
        text += table([
            ("images/s (median)", String(format: "%.1f", median(rates))),
            ("images/s (range)", String(format: "%.1f to %.1f", rates.min()!, rates.max()!)),
            ("training seconds", String(format: "%.1f s (%@) over %d epochs", total, shortDuration(total), records.count)),
            ("seconds per epoch (median)", String(format: "%.1f s", median(seconds))),
        ])
        let chart = EpochChart(title: "images per second per epoch", yLabel: "images/s",
                               series: [.init(name: "images_per_s", colour: Self.blue,
                                              points: records.map { ($0.epoch, $0.imagesPerSecond) })],
                               width: 560, height: 220)
        text += "<figure>\(chart.svg())<figcaption>Training images per second of each epoch (rank 0's clock;"
            + " seconds include validation).</figcaption></figure>\n"
        return text + "</section>\n"
    }

    /// The validation pictures, worst first (or how to get them).
    private func overlays() -> String {
        var text = "<section id=\"overlays\">\n<h2>Validation images, worst first</h2>\n"
        guard let grid else {
            return text + "<p class=\"hint\">Give the data folder to see the validation images with their predicted"
                + " and true outlines and their Dice scores, the worst first:</p>\n<pre>\(HTML.escape(gridCommand))</pre>\n</section>\n"
        }
        text += "<p>\(grid.pictures.count) of the \(grid.scored) images of \(HTML.escape(grid.selection)), lowest Dice first"
            + " (\(grid.width)x\(grid.height), shown at \(grid.pictureWidth)x\(grid.pictureHeight)):"
            + " <span class=\"key predicted\">predicted outline</span> <span class=\"key truth\">true outline</span>"
            + " <span class=\"key both\">both</span>. <b>Dice</b>: of the outlines drawn, at the original size (1 when both"
            + " masks are empty; kaggle_full in <code>evaluate --png</code>'s scores.csv); <i>soft</i>: of the probabilities"
            + String(format: " at the model's size. Means over the %d images: Dice %.4f, Kaggle score %.4f, soft Dice %.4f.</p>\n",
                     grid.scored, grid.meanKaggleFull, grid.meanKaggle, grid.meanDice)
        text += "<div class=\"grid\">\n"
        for p in grid.pictures {
            let s = p.score
            let quality = s.kaggleFull < 0.5 ? "bad" : s.kaggleFull < 0.8 ? "fair" : "good"
            text += "<figure class=\"overlay\" data-index=\"\(s.index)\" data-score=\(String(format: "\"%.6f\"", s.kaggleFull))>"
            text += "<img src=\"data:image/png;base64,\(Data(p.png).base64EncodedString())\" width=\"\(p.width)\""
                + " height=\"\(p.height)\" alt=\"image \(s.index) with its outlines\"/>"
            text += "<figcaption><span class=\"dice \(quality)\">Dice \(String(format: "%.3f", s.kaggleFull))</span>"
                + " <b>#\(s.index)</b> subject \(s.subject)<br/>"
                + String(format: "soft %.3f · kaggle %.3f · ", s.dice, s.kaggle)
                + "true \(grouped(s.truePixels)) px · predicted \(grouped(s.predictedPixels)) px</figcaption></figure>\n"
        }
        return text + "</div>\n</section>\n"
    }

    /// Every epoch's row of the metrics log (folded).
    private func epochTable() -> String {
        guard !records.isEmpty else { return "" }
        var text = "<section id=\"epochs\">\n<details><summary>Every epoch (\(records.count))</summary>\n<table class=\"epochs\">\n<tr>"
        text += MetricsLog.columns.map { "<th>\($0)</th>" }.joined() + "</tr>\n"
        for r in records {
            let cells = ["\(r.epoch)", fixed(r.loss), fixed(r.dice), fixed(r.valLoss), fixed(r.valDice), fixed(r.valKaggle),
                         r.learningRate.map { "\($0)" } ?? "", String(format: "%.1f", r.imagesPerSecond),
                         String(format: "%.1f", r.seconds)]
            text += "<tr>" + cells.map { "<td>\(HTML.escape($0))</td>" }.joined() + "</tr>\n"
        }
        return text + "</table>\n</details>\n</section>\n"
    }

    // MARK: Helpers

    private func table(_ rows: [(String, String)]) -> String {
        "<table class=\"facts\">\n" + rows.map { "<tr><th>\(HTML.escape($0.0))</th><td>\(HTML.escape($0.1))</td></tr>\n" }.joined()
            + "</table>\n"
    }

    private func fixed(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "" }

    private func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    private func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(d)
        }
        return (n < 0 ? "-" : "") + out
    }

    private func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MB", Double(n) / 1_048_576) : n >= 1 << 10 ? String(format: "%.0f kB", Double(n) / 1024)
            : "\(n) bytes"
    }

    private func fileName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    static let blue = "#1f77b4", orange = "#ff7f0e", green = "#2ca02c"

    /// The page's style (no `<` or `&` in it: it is XML text too).
    static let style = """

        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0 auto;
               max-width: 1180px; padding: 16px 20px 32px; background: #f6f7f9; }
        h1 { font-size: 24px; margin: 4px 0 0; }
        h2 { font-size: 18px; margin: 22px 0 8px; }
        .subtitle { color: #555; margin: 2px 0 12px; }
        code, pre { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
        pre { background: #fff; border: 1px solid #ddd; padding: 8px 10px; overflow-x: auto; }
        section { margin-bottom: 8px; }
        .tiles { display: flex; flex-wrap: wrap; gap: 10px; }
        .tile { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
        .tile .label { color: #666; font-size: 12px; }
        .tile .value { font-size: 22px; font-weight: 600; }
        .tile .detail { color: #888; font-size: 11.5px; }
        .notes { background: #fff6e0; border: 1px solid #eed596; padding: 8px 8px 8px 28px; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px; }
        figure { margin: 0; }
        figcaption { color: #555; font-size: 12px; max-width: 560px; }
        svg.chart { background: #fff; border: 1px solid #dde; max-width: 100%; height: auto; }
        .hint { color: #555; }
        .columns { display: flex; flex-wrap: wrap; gap: 16px 28px; }
        .columns section { flex: 1 1 520px; }
        table { border-collapse: collapse; background: #fff; }
        table.facts th { text-align: left; font-weight: 500; color: #555; padding: 3px 16px 3px 8px; white-space: nowrap; }
        table.facts td { padding: 3px 8px; }
        table.facts tr, table.epochs tr { border-bottom: 1px solid #eee; }
        table.epochs th, table.epochs td { padding: 2px 10px; text-align: right; font-variant-numeric: tabular-nums; }
        .grid { display: flex; flex-wrap: wrap; gap: 12px; }
        .overlay { background: #fff; border: 1px solid #dde; border-radius: 4px; padding: 4px; }
        .overlay img { display: block; max-width: 100%; height: auto; }
        .overlay figcaption { padding: 4px 2px 0; color: #444; width: 0; min-width: 100%; }
        .dice { font-weight: 600; padding: 0 5px; border-radius: 3px; color: #fff; }
        .dice.bad { background: #c0392b; } .dice.fair { background: #d68910; } .dice.good { background: #239b56; }
        .key { padding: 0 5px; border-radius: 3px; color: #000; }
        .key.predicted { background: #00ff00; } .key.truth { background: #ff0000; color: #fff; } .key.both { background: #ffff00; }
        details summary { cursor: pointer; margin: 18px 0 8px; font-weight: 600; }
        footer { color: #777; font-size: 12px; margin-top: 24px; border-top: 1px solid #ddd; padding-top: 8px; }

        """
}

/// The validation pictures of the report (with `--data`), worst first.
struct ReportGrid {
    struct Picture {
        var score: OverlayPictures.Score
        /// The reduced overlay, PNG-encoded.
        var png: [UInt8]
        var width: Int, height: Int
    }

    /// The worst pictures, lowest `kaggleFull` first.
    var pictures: [Picture]
    /// The images scored, and which (e.g. "the validation subjects (--validation-split 0.2)").
    var scored: Int
    var selection: String
    /// The original size of the images, and the size shown.
    var width: Int, height: Int
    var pictureWidth: Int, pictureHeight: Int
    /// Means over the scored images of `kaggle` (`evaluate`'s Kaggle score), `kaggleFull` and
    /// `dice`.
    var meanKaggle: Double, meanKaggleFull: Double, meanDice: Double
}
