import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import Pictures

/// `unet report` (issue 7, point 5) as a user runs it: one page that parses as XML, one point
/// per epoch in each curve, the worst validation images first with their pictures embedded,
/// nothing written on bad input.
@Suite("unet report") struct ReportTests {
    typealias Result = CLITests.Result

    /// The page parsed as XML (the report is written XHTML-compatible, so a strict parse is the
    /// well-formedness check).
    static func parse(_ path: String) throws -> XMLDocument {
        try XMLDocument(data: Data(readBytes(path)), options: [])
    }

    /// Every element named `name` (any namespace), in document order.
    static func elements(_ name: String, in document: XMLDocument) -> [XMLElement] {
        var found: [XMLElement] = []
        func walk(_ node: XMLNode) {
            if let element = node as? XMLElement, element.localName == name { found.append(element) }
            for child in node.children ?? [] { walk(child) }
        }
        if let root = document.rootElement() { walk(root) }
        return found
    }

    /// (Looked up among `attributes`: Foundation's `attribute(forName:)` finds nothing on Linux
    /// for an element in a default namespace, as the SVG's.)
    static func attribute(_ element: XMLElement, _ name: String) -> String? {
        element.attributes?.first { $0.name == name }?.stringValue
    }

    /// The polylines by `data-series`: their points as (x, y).
    static func series(_ document: XMLDocument) -> [String: [(x: Double, y: Double)]] {
        var series: [String: [(x: Double, y: Double)]] = [:]
        for line in elements("polyline", in: document) {
            guard let name = attribute(line, "data-series") else { continue }
            series[name] = (attribute(line, "points") ?? "").split(separator: " ").map { point in
                let xy = point.split(separator: ",").map { Double($0)! }
                return (xy[0], xy[1])
            }
        }
        return series
    }

    static func report(_ arguments: [String]) throws -> Result { try CLITests.run(["report"] + arguments) }

    /// Without --data: the curves (one point per epoch, left to right, in every series of the
    /// log), the configuration and the throughput, the way to add the pictures, and nothing
    /// the page loads from elsewhere.
    @Test func curvesHaveOnePointPerEpoch() throws {
        try withTemporaryDirectory { dir in
            try TrainOutputCLITests.prepare(dir)
            #expect(try TrainOutputCLITests.train(dir, "unet.h5", epochs: 3).status == 0)
            try FileManager.default.createDirectory(atPath: dir + "/pages", withIntermediateDirectories: false)
            let page = dir + "/pages/report.html"
            let run = try Self.report(["--checkpoint", dir + "/unet.h5", "--out", page])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stderr.hasPrefix("report: \(page) (3 epochs"), "\(run.stderr)")
            #expect(listing(dir + "/pages") == ["report.html"])  // no temporary left

            let document = try Self.parse(page)
            let series = Self.series(document)
            #expect(Set(series.keys) == ["loss", "val_loss", "dice", "val_dice", "val_kaggle_score", "images_per_s"])
            for (name, points) in series {
                #expect(points.count == 3, "\(name): \(points)")
                #expect(zip(points, points.dropFirst()).allSatisfy { $0.x < $1.x }, "\(name): \(points)")
            }
            // The log's losses, in order, are what the loss curve plots: higher loss, lower y.
            let log = try TrainOutputCLITests.rows(dir + "/unet.csv").dropFirst().map { Double($0[1])! }
            let ys = series["loss"]!.map(\.y)
            for i in 0..<3 { for j in 0..<3 where log[i] < log[j] { #expect(ys[i] > ys[j]) } }

            let text = String(decoding: try readBytes(page), as: UTF8.self)
            for fact in ["unet.csv", "Adam steps", "learning rate", "images/s (median)", "--data"] {
                #expect(text.contains(fact), "the page lacks \(fact)")
            }
            #expect(Self.elements("figure", in: document).allSatisfy { Self.attribute($0, "class") != "overlay" })
            #expect(Self.elements("img", in: document).isEmpty)
            for external in ["<script", "<link", "src=\"http", "href=\"http", "url("] {
                #expect(!text.contains(external), "the page loads \(external)")
            }
        }
    }

    /// The epochs come from the checkpoint's history when the log is missing; `unet.last.h5`
    /// reads `unet.csv`; a run without validation has no val_ series.
    @Test func historyFallbackLastCheckpointAndNoValidation() throws {
        try withTemporaryDirectory { dir in
            try TrainOutputCLITests.prepare(dir)
            #expect(try TrainOutputCLITests.train(dir, "unet.h5", epochs: 2).status == 0)
            let last = try Self.report(["--checkpoint", dir + "/unet.last.h5", "--out", dir + "/last.html"])
            #expect(last.status == 0, "\(last.stderr)")
            #expect(String(decoding: try readBytes(dir + "/last.html"), as: UTF8.self).contains("the metrics log \(dir)/unet.csv"))

            try FileManager.default.removeItem(atPath: dir + "/unet.csv")
            let run = try Self.report(["--checkpoint", dir + "/unet.last.h5", "--out", dir + "/history.html"])
            #expect(run.status == 0, "\(run.stderr)")
            let document = try Self.parse(dir + "/history.html")
            #expect(Self.series(document)["loss"]?.count == 2 && Self.series(document)["val_dice"]?.count == 2)
            #expect(String(decoding: try readBytes(dir + "/history.html"), as: UTF8.self).contains("the checkpoint&#39;s history"))

            #expect(try TrainOutputCLITests.train(dir, "noval.h5", epochs: 2, ["--validation-split", "0"]).status == 0)
            #expect(try Self.report(["--checkpoint", dir + "/noval.h5", "--out", dir + "/noval.html"]).status == 0)
            #expect(Set(Self.series(try Self.parse(dir + "/noval.html")).keys) == ["loss", "dice", "images_per_s"])
        }
    }

    /// With --data: at most --max-images pictures, the lowest Dice first — the lowest
    /// kaggle_full of `unet evaluate --png`'s scores.csv — each a PNG embedded at half size.
    @Test func gridIsWorstFirstWithThePicturesEmbedded() throws {
        try withTemporaryDirectory { dir in
            try TrainOutputCLITests.prepare(dir)  // 10 images of 3 subjects
            #expect(try TrainOutputCLITests.train(dir, "unet.h5", epochs: 2).status == 0)
            let page = dir + "/report.html"
            let run = try Self.report(["--checkpoint", dir + "/unet.h5", "--data", dir + "/data", "--all",
                                       "--max-images", "4", "--out", page])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stderr.contains("4 of 10 validation images"), "\(run.stderr)")
            let figures = Self.elements("figure", in: try Self.parse(page)).filter { Self.attribute($0, "class") == "overlay" }
            #expect(figures.count == 4)
            let scores = figures.compactMap { Self.attribute($0, "data-score") }
            #expect(scores.count == 4 && zip(scores, scores.dropFirst()).allSatisfy { Double($0)! <= Double($1)! }, "\(scores)")

            let evaluate = try CLITests.run(["evaluate", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                             "--all", "--png", dir + "/eval"])
            #expect(evaluate.status == 0, "\(evaluate.stderr)")
            let rows = try TrainOutputCLITests.rows(dir + "/eval/scores.csv").dropFirst()
            #expect(Array(rows.map { $0[5] }.sorted { Double($0)! < Double($1)! }.prefix(4)) == scores)

            for figure in figures {
                let images = Self.elements("img", in: try XMLDocument(xmlString: figure.xmlString, options: []))
                let source = try #require(images.first.flatMap { Self.attribute($0, "src") })
                #expect(source.hasPrefix("data:image/png;base64,"))
                let png = try #require(Data(base64Encoded: String(source.dropFirst("data:image/png;base64,".count))))
                try png.write(to: URL(fileURLWithPath: dir + "/picture.png"))
                let picture = try PNG.read(dir + "/picture.png")
                #expect(picture.width == 290 && picture.height == 210)
                #expect(Self.attribute(images[0], "width") == "290" && Self.attribute(images[0], "height") == "210")
            }
        }
    }

    /// A missing checkpoint, a damaged metrics log, a bad --out: one line naming the file,
    /// exit status 1, and the page (here an older one) untouched. A last row cut short is a
    /// note, not an error.
    @Test func badInputIsOneLineAndNothingIsWritten() throws {
        try withTemporaryDirectory { dir in
            try TrainOutputCLITests.prepare(dir)
            #expect(try TrainOutputCLITests.train(dir, "unet.h5", epochs: 2).status == 0)
            let page = dir + "/report.html"
            try writeBytes(Array("an older page".utf8), page)
            func refused(_ arguments: [String], _ expected: String) throws {
                let run = try Self.report(arguments + ["--out", page])
                #expect(run.status == 1 && run.stdout.isEmpty, "\(run.stderr)")
                #expect(run.stderr == expected, "\(run.stderr)")
                #expect(try readBytes(page) == Array("an older page".utf8))
                #expect(listing(dir).filter { $0.hasPrefix(".") }.isEmpty)
            }
            try refused(["--checkpoint", dir + "/missing.h5"], "error: \(dir)/missing.h5: No such file or directory\n")
            try refused(["--checkpoint", dir + "/unet.h5", "--data", dir + "/nowhere"],
                        "error: \(dir)/nowhere: missing data folder (No such file or directory): --data names the folder `unet prepare` writes\n")

            let log = dir + "/unet.csv"
            let good = try readBytes(log)
            try writeBytes(good + Array("3,-0.5,0.5\n".utf8), log)
            try refused(["--checkpoint", dir + "/unet.h5"], "error: \(log): line 4: 3 cells, the header has 9\n")
            try writeBytes(good + Array("3,-0.5,x,,,,0.001,9.0,1.0\n".utf8), log)
            try refused(["--checkpoint", dir + "/unet.h5"], "error: \(log): line 4: dice 'x' is not a number\n")
            try writeBytes(Array("epoch,loss\n".utf8) + good.drop(while: { $0 != 10 }).dropFirst(), log)
            try refused(["--checkpoint", dir + "/unet.h5"],
                        "error: \(log): line 1: not the header of a metrics log written by unet train (expected epoch,loss,dice,val_loss,val_dice,val_kaggle_score,lr,images_per_s,seconds)\n")
            try writeBytes(good + good.drop(while: { $0 != 10 }).dropFirst(), log)  // the rows again
            try refused(["--checkpoint", dir + "/unet.h5"], "error: \(log): line 4: epoch 1 after epoch 2\n")

            // A row cut short at the end: left out, with a note.
            try writeBytes(good + Array("3,-0.5,0.5,-0.4".utf8), log)
            let cut = try Self.report(["--checkpoint", dir + "/unet.h5", "--out", page])
            #expect(cut.status == 0 && cut.stderr.contains("cut short"), "\(cut.stderr)")
            #expect(Self.series(try Self.parse(page))["loss"]?.count == 2)

            let noFolder = try Self.report(["--checkpoint", dir + "/unet.h5", "--out", dir + "/no/such/report.html"])
            #expect(noFolder.status == 1 && noFolder.stderr == "error: \(dir)/no/such/report.html: cannot write: no folder \(dir)/no/such\n",
                    "\(noFolder.stderr)")
            let usage = try Self.report(["--checkpoint", dir + "/unet.h5", "--out", page, "--max-images", "0"])
            #expect(usage.status == 64 && usage.stderr == "error: --max-images must be at least 1 (see 'unet report --help')\n",
                    "\(usage.stderr)")
        }
    }
}
