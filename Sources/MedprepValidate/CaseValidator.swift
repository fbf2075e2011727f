import MedprepCore
import MedprepIO
import MedprepDataset

/// What one case contributed: its findings, plus what the dataset-wide checks need
/// (class counts, intensity statistics, a content hash). Nothing voxel-sized is kept.
package struct CaseResult: Sendable {
    package var id: String
    package var images: [String]
    package var mask: String?
    package var nestedMasks: [String]
    package var findings: [Finding] = []
    package var dims: [Int]? = nil
    package var spacing: [Double]? = nil
    package var is2D: Bool? = nil
    /// Voxels per class code (declared order, or inferred values in order of appearance).
    package var classCounts: [Int]? = nil
    package var classValues: [MaskCodes.Raw]? = nil
    package var structureChecked = false
    /// Statistics of each image channel file (nil when it was not read).
    package var imageStats: [Moments?] = []
    package var contentHash: String? = nil
    /// Canonical block signature of each image channel file (all of them, or none).
    package var signatures: [ContentSignature]? = nil
    package var thumbnail: String? = nil
}

/// Runs every per-case check on one case: one read of each file, everything computed while
/// the voxels are in memory, then the voxels are dropped.
package struct CaseValidator: Sendable {
    package let labels: LabelSpec?
    package let options: ValidationOptions
    package let geometry: GeometrySpec

    package var classNames: [String]? { labels?.classes.map(\.name) }

    package func className(_ code: Int, values: [MaskCodes.Raw]) -> String {
        if let names = classNames, code < names.count { return "'\(names[code])'" }
        return code < values.count ? "value \(values[code].text)" : "class \(code)"
    }

    package static func isNIfTI(_ p: String) -> Bool { NIfTIReader.handles(p) }

    /// The fix for an ordinal hole depends on what fills it. Background enclosed by a layer is
    /// often real anatomy (a ventricle, a lumen): filling it would be wrong. A lower layer
    /// inside a higher one means the layers are out of order there.
    package static func holeFix(_ h: MaskStructure.Hole, names: (Int) -> String) -> String {
        if h.fill == [0] {
            return "if the anatomy has a cavity here (a ventricle, a lumen, a vessel), the mask is right and this can be ignored; if it is an annotation gap, fill it with \(names(h.level))"
        }
        let lower = h.fill.filter { $0 > 0 }.map(names).joined(separator: ", ")
        return "\(lower) inside \(names(h.level)) skips the layers between: relabel the hole \(names(h.level)) if it is an annotation slip, or draw the missing layers around it"
    }

    /// The case result plus what a thumbnail needs (released by the caller right after).
    package struct CaseOutput {
        package var result: CaseResult
        package var image: MedicalImage?
        package var codes: MaskCodes?
        package var grid: Grid?
        /// The stored grid's affine (the mask's, else the first image's).
        package var affine: Affine4?
        package var marks: [Int32]
    }

    package func run(_ files: CaseFiles, needsImageData: Bool) -> CaseOutput {
        var r = CaseResult(id: files.id, images: files.images, mask: files.mask, nestedMasks: files.nestedMasks)
        r.imageStats = [Moments?](repeating: nil, count: files.images.count)
        let id = files.id
        var decoded: [String: MedicalImage] = [:]
        var marks: [Int32] = []

        func unreadable(_ path: String, _ error: Error) {
            let e = (error as? MedprepError)?.at(path) ?? MedprepError(.ioFailure, path: path, "\(error)")
            r.findings.append(Finding(.unreadableFile, case: id, file: path, "cannot read '\(GeometryChecks.base(path))': \(e.message)",
                                      fix: "re-export or re-download the file; until then the case cannot be used",
                                      details: [("error", .string(e.code.rawValue))], magnitude: 1))
        }
        /// Header-level geometry; 2D files are decoded here (they have no separate header).
        func fileGeometry(_ path: String) -> FileGeometry? {
            do {
                if Self.isNIfTI(path) { return try FileGeometry.nifti(path: path, checkSize: options.scope == .errors) }
                let img = try ImageReader.read(path: path)
                decoded[path] = img
                return FileGeometry.of(image: img, path: path)
            } catch {
                unreadable(path, error)
                return nil
            }
        }
        func read(_ path: String) -> MedicalImage? {
            if let img = decoded.removeValue(forKey: path) { return img }
            do { return try ImageReader.read(path: path) } catch { unreadable(path, error); return nil }
        }

        // 1. Geometry of every file, checks within each file, then against the first image.
        let imageGeos = files.images.map(fileGeometry)
        let maskPaths = (files.mask.map { [$0] } ?? []) + files.nestedMasks
        let maskGeos = maskPaths.map(fileGeometry)
        // A defect shared by several files of the case (a header written by one tool for all of
        // them) is one finding naming every file.
        var fileFindings: [Finding] = []
        for g in (imageGeos + maskGeos).compactMap({ $0 }) {
            for f in GeometryChecks.fileChecks(g, caseID: id, options: options) {
                if let k = fileFindings.firstIndex(where: { $0.code == f.code && $0.message == f.message }) {
                    if case .array(let files)? = fileFindings[k].details.first(where: { $0.0 == "files" })?.1 {
                        fileFindings[k].details.removeAll { $0.0 == "files" }
                        fileFindings[k].details.append(("files", .array(files + [.string(f.file ?? "")])))
                    }
                } else {
                    var f = f
                    f.details.append(("files", .array([.string(f.file ?? "")])))
                    fileFindings.append(f)
                }
            }
        }
        for var f in fileFindings {
            if case .array(let files)? = f.details.first(where: { $0.0 == "files" })?.1, files.count > 1 {
                f.message.removeLast()
                f.message += " (the same in all \(files.count) files of the case)."
            }
            r.findings.append(f)
        }
        let ref = imageGeos.first ?? nil
        if let ref {
            r.dims = ref.is2D ? Array(ref.dims.prefix(2)) : ref.dims
            r.spacing = ref.is2D ? Array(ref.spacing.prefix(2)) : ref.spacing
            r.is2D = ref.is2D
            for g in imageGeos.dropFirst().compactMap({ $0 }) {
                r.findings += GeometryChecks.pairChecks(reference: ref, other: g, otherIsMask: false, caseID: id, tolerances: options.tolerances)
            }
            for g in maskGeos.compactMap({ $0 }) {
                r.findings += GeometryChecks.pairChecks(reference: ref, other: g, otherIsMask: true, caseID: id, tolerances: options.tolerances)
            }
        }

        // 2. Mask values (raw, before any mapping) and structure.
        var codes: MaskCodes? = nil
        var structure: MaskStructure? = nil
        var maskGrid: Grid? = nil
        var maskAffine = Affine4.identity
        if let maskPath = files.mask, maskGeos.first.flatMap({ $0 }) != nil, let mask = read(maskPath) {
            let sd = mask.spatialDims
            maskGrid = Grid(nx: sd[0], ny: sd[1], nz: sd[2])
            maskAffine = mask.affine
            let single = mask.frameCount > 1 ? ((try? mask.frame(0)) ?? mask) : mask
            let (mc, ok, valueFindings, valueMarks) = maskValues(single, path: maskPath, caseID: id, grid: maskGrid!)
            r.findings += valueFindings
            marks += valueMarks
            codes = mc
            if let mc, ok {
                r.structureChecked = true
                structure = structureChecks(mc, grid: maskGrid!, affine: mask.affine, path: maskPath, caseID: id, result: &r)
                marks += structure?.marks ?? []
            }
            if let mc {
                r.classCounts = mc.classCounts
                r.classValues = mc.classValues
            }
        } else if !files.nestedMasks.isEmpty, maskGeos.allSatisfy({ $0 != nil }) {
            let masks = files.nestedMasks.compactMap(read)
            if masks.count == files.nestedMasks.count, let first = masks.first,
               masks.allSatisfy({ $0.spatialDims == first.spatialDims }) {
                let sd = first.spatialDims
                maskGrid = Grid(nx: sd[0], ny: sd[1], nz: sd[2])
                maskAffine = first.affine
                let (mc, nestFindings, nestMarks) = nestedCodes(masks, paths: files.nestedMasks, caseID: id)
                r.findings += nestFindings
                marks += nestMarks
                codes = mc
                r.structureChecked = true
                structure = structureChecks(mc, grid: maskGrid!, affine: first.affine, path: files.nestedMasks[0], caseID: id, result: &r)
                marks += structure?.marks ?? []
                r.classCounts = mc.classCounts
                r.classValues = mc.classValues
            }
        }

        // 3. Images: non-finite values, statistics, content hash. With scope .errors only images
        // that can hold NaN (floating point) are read.
        var firstImage: MedicalImage? = nil
        var hashes: [String] = []
        var signatures: [ContentSignature] = []
        for (c, path) in files.images.enumerated() {
            guard let g = imageGeos[c] else { continue }
            let mustRead = options.scope == .all || !g.voxelType.isInteger || needsImageData
            guard mustRead, let img = read(path) else { continue }
            if !img.voxels.type.isInteger {
                let nf = ImageChecks.nonFinite(img)
                if nf.nan + nf.posInf + nf.negInf > 0 {
                    let total = nf.nan + nf.posInf + nf.negInf
                    let sd = img.spatialDims
                    let g3 = Grid(nx: sd[0], ny: sd[1], nz: sd[2])
                    r.findings.append(Finding(
                        .imageNonFinite, case: id, file: path,
                        "image holds \(total) non-finite values (\(nf.nan) NaN, \(nf.posInf) +Inf, \(nf.negInf) -Inf), the first at \(g3.coordText(nf.first)); normalisation turns the whole case into NaN.",
                        fix: "replace them with a value that makes sense for the image (e.g. the background intensity), as nnU-Net asks",
                        details: [("nan", .int(nf.nan)), ("pos_inf", .int(nf.posInf)), ("neg_inf", .int(nf.negInf)),
                                  ("first_voxel", .ints(g3.coords(nf.first)))],
                        magnitude: Double(total)))
                    if c == 0 { marks += nf.marks }
                }
            }
            if options.scope == .all {
                r.imageStats[c] = Moments.of(img)
                hashes.append(ImageChecks.contentHash(img))
                if let sig = ContentSignature.of(img, orientation: geometry.orientation) { signatures.append(sig) }
            }
            if c == 0 { firstImage = img }
        }
        if options.scope == .all && hashes.count == files.images.count && !hashes.isEmpty {
            r.contentHash = hashes.joined(separator: "-")
            if signatures.count == files.images.count { r.signatures = signatures }
        }
        return CaseOutput(result: r, image: firstImage, codes: codes, grid: maskGrid,
                          affine: maskGrid != nil ? maskAffine : firstImage?.affine,
                          marks: marks)
    }

    // MARK: - mask values

    /// Decodes the mask's raw values into codes and reports value problems. `ok` says whether
    /// the codes are all classes (structure checks can run).
    package func maskValues(_ mask: MedicalImage, path: String, caseID id: String, grid: Grid)
        -> (MaskCodes?, Bool, [Finding], [Int32]) {
        var out: [Finding] = []
        let unit = grid.is2D ? "pixels" : "voxels"
        let decoder = MaskDecoder(labels: labels)
        var mc: MaskCodes
        do {
            mc = try decoder.decode(mask)
        } catch MaskDecoder.Failure.channels(let message) {
            out.append(Finding(.maskChannels, case: id, file: path, message,
                               fix: labels?.usesColours == true ? "save the mask as RGB or palette PNG with the declared colours"
                                   : "save the mask as a single-channel (greyscale or palette) image holding the class values",
                               details: [("channels", .int(mask.channels))], magnitude: 1))
            return (nil, false, out, [])
        } catch {
            return (nil, false, out, [])
        }
        let declaredMode = labels != nil
        let colours = labels?.usesColours == true
        let total = max(1, mc.codes.count)
        var ok = true
        var marks: [Int32] = []
        let undeclared = mc.undeclaredTotal
        let undeclaredList = mc.undeclaredValues.enumerated().map { ($0.element, mc.undeclaredCounts[$0.offset]) }
            .sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0.text < $1.0.text) }
        func listText(_ items: [(MaskCodes.Raw, Int)], _ limit: Int = 8) -> String {
            var parts = items.prefix(limit).map { "\($0.0.text) (\($0.1) \(unit))" }
            if items.count > limit { parts.append("and \(items.count - limit) more") }
            if mc.undeclaredCounts.last! > 0 { parts.append("\(mc.undeclaredCounts.last!) \(unit) of further values") }
            return parts.joined(separator: ", ")
        }
        let valuesJSON = JSON.array(undeclaredList.prefix(64).map { .object([("value", $0.0.json), ("voxels", .int($0.1))]) })
        let declaredText = mc.classValues.map(\.text).joined(separator: ", ")
        var hasNonInteger = mc.undeclaredValues.contains { v in
            switch v {
            case .number(let d): return !(d.isFinite && d == d.rounded())
            case .nan: return true
            case .colour: return false
            }
        }

        if mask.format == .jpeg {
            // JPEG masks are snapped to the nearest class, as medprep convert does.
            if declaredMode {
                if undeclared > 0 {
                    var lut = [UInt16](repeating: 0, count: mc.undeclaredValues.count + 1)
                    for (i, v) in mc.undeclaredValues.enumerated() { lut[i] = decoder.nearestClass(v, classValues: mc.classValues) }
                    let base = MaskCodes.undeclaredBase
                    var added = [Int](repeating: 0, count: mc.classCounts.count)
                    mc.codes.withUnsafeMutableBufferPointer { c in
                        for i in c.indices where c[i] >= base {
                            let u = c[i] == MaskCodes.overflow ? lut.count - 1 : Int(c[i] - base)
                            c[i] = lut[u]
                            added[Int(lut[u])] += 1
                        }
                    }
                    for k in added.indices { mc.classCounts[k] += added[k] }
                }
            } else {
                ok = false
            }
            out.append(Finding(
                .maskJPEG, case: id, file: path,
                "mask is a JPEG: lossy compression left \(undeclared) \(unit) (\(GeometryChecks.fmt(100 * Double(undeclared) / Double(total), 2))%) off the class values\(declaredMode ? ", which medprep snaps to the nearest class" : "").",
                fix: "store masks losslessly (PNG); re-export from the annotation tool rather than converting the JPEG",
                details: [("off_value_pixels", .int(undeclared))], magnitude: Double(undeclared)))
            hasNonInteger = false
            mc.undeclaredCounts = mc.undeclaredCounts.map { _ in 0 }
        } else if undeclared > 0 {
            ok = false
            // Where are the undeclared voxels: on class edges (anti-aliasing) or inside regions?
            let faces = Neighbourhood.offsets(grid, full: false, backward: false)
            var onEdge = 0
            let base = MaskCodes.undeclaredBase
            mc.codes.withUnsafeBufferPointer { c in
                var v = 0
                for z in 0..<grid.nz {
                    for y in 0..<grid.ny {
                        for x in 0..<grid.nx {
                            defer { v += 1 }
                            guard c[v] >= base else { continue }
                            if marks.count < MaskStructure.markCap { marks.append(Int32(v)) }
                            for o in faces {
                                let xx = x + o.dx, yy = y + o.dy, zz = z + o.dz
                                if xx < 0 || xx >= grid.nx || yy < 0 || yy >= grid.ny || zz < 0 || zz >= grid.nz { continue }
                                if c[v + o.delta] != c[v] { onEdge += 1; break }
                            }
                        }
                    }
                }
            }
            let edgeShare = Double(onEdge) / Double(undeclared)
            let declaredNumbers = mc.classValues.compactMap(\.number)
            let lo = declaredNumbers.min() ?? 0, hi = declaredNumbers.max() ?? 0
            let between = colours || mc.undeclaredValues.allSatisfy { v in v.number.map { $0 > lo && $0 < hi } ?? false }
            let presentClasses = mc.classCounts.enumerated().filter { $0.element > 0 }.map(\.offset)
            let undeclaredNumbers = mc.undeclaredValues.compactMap(\.number)
            let bigValue = undeclaredNumbers.count == 1 && mc.undeclaredValues.count == 1
                && [255.0, 65535].contains(undeclaredNumbers[0]) && presentClasses.allSatisfy { $0 == 0 }
            if declaredMode && edgeShare >= options.antialiasEdgeShare && between && !mc.undeclaredValues.contains(.nan) {
                let values = undeclaredList.map(\.0.text)
                out.append(Finding(
                    .maskAntialiased, case: id, file: path,
                    "\(undeclared) \(unit) (\(GeometryChecks.fmt(100 * Double(undeclared) / Double(total), 2))%) hold in-between values \(values.prefix(6).joined(separator: ", "))\(values.count > 6 ? "…" : ""), and \(GeometryChecks.fmt(100 * edgeShare, 1))% of them lie on class edges: the mask was anti-aliased, smoothed or resampled with linear interpolation.",
                    fix: "re-export the mask without anti-aliasing (nearest-neighbour), or set each voxel to the nearest class value",
                    details: [("voxels", .int(undeclared)), ("edge_share", .number(edgeShare)), ("values", valuesJSON)],
                    magnitude: Double(undeclared)))
            } else if hasNonInteger {
                let nonInt = undeclaredList.filter { !$0.0.isInteger }
                out.append(Finding(
                    .labelsNonInteger, case: id, file: path,
                    "mask holds non-integer values: \(listText(nonInt)); labels must be whole numbers.",
                    fix: "round each voxel to its class value, or re-export the mask with nearest-neighbour interpolation",
                    details: [("voxels", .int(nonInt.reduce(0) { $0 + $1.1 })), ("values", valuesJSON)],
                    magnitude: Double(nonInt.reduce(0) { $0 + $1.1 })))
            } else if declaredMode && !colours && bigValue {
                let big = formatShort(undeclaredNumbers[0])
                let target = mc.classValues.count > 1 ? mc.classValues[1].text : "1"
                out.append(Finding(
                    .mask0255, case: id, file: path,
                    "mask values are 0 and \(big) (\(undeclared) \(unit) of \(big)) but the classes declare \(declaredText): a 0/\(big) image mask.",
                    fix: "remap \(big) to \(target) (e.g. mask // \(big)), or declare value \(big) for class \(className(1, values: mc.classValues))",
                    details: [("value", .number(undeclaredNumbers[0])), ("voxels", .int(undeclared)), ("remap_to", .string(target))],
                    magnitude: Double(undeclared)))
            } else {
                out.append(Finding(
                    .labelsUndeclared, case: id, file: path,
                    "mask values \(listText(undeclaredList)) are not declared classes; declared: \(declaredText).",
                    fix: "declare them in the manifest's labels.classes, or remap them to a declared value",
                    details: [("voxels", .int(undeclared)), ("values", valuesJSON),
                              ("declared", .array(mc.classValues.map(\.json)))],
                    magnitude: Double(undeclared)))
            }
        }
        // Stored type and scaling, whatever the values.
        if !mask.voxels.type.isInteger && !hasNonInteger && undeclared == 0 {
            out.append(Finding(
                .labelsFloatType, case: id, file: path,
                "mask is stored as \(mask.voxels.type.rawValue) although every value is a whole number; float labels invite rounding errors in other tools.",
                fix: "store masks as uint8 (uint16 above 255 classes)",
                details: [("datatype", .string(mask.sourceDatatype))], magnitude: 1))
        }
        if let s = mask.scaling, s.slope != 1 || s.intercept != 0 {
            out.append(Finding(
                .maskScaled, case: id, file: path,
                "mask header sets scl_slope \(formatShort(s.slope)) and scl_inter \(formatShort(s.intercept)): stored values are rescaled before they become labels (stored 1 reads as \(formatShort(s.slope + s.intercept))).",
                fix: "store the label values themselves and set scl_slope to 1 (or 0) and scl_inter to 0",
                details: [("scl_slope", .number(s.slope)), ("scl_inter", .number(s.intercept))], magnitude: 1))
        }
        return (mc, ok, out, marks)
    }

    /// Nested masks (a class is the number of masks covering a pixel): codes, and pixels where
    /// mask k is on but mask k-1 is off (the layers are not nested).
    package func nestedCodes(_ masks: [MedicalImage], paths: [String], caseID id: String) -> (MaskCodes, [Finding], [Int32]) {
        let (codes, outside) = MaskDecoder.nested(masks, markCap: MaskStructure.markCap)
        var findings: [Finding] = []
        var marks: [Int32] = []
        for (k, o) in outside.enumerated() where o.count > 0 {
            marks += o.marks.prefix(MaskStructure.markCap - marks.count)
            let sd = masks[k].spatialDims
            let g = Grid(nx: sd[0], ny: sd[1], nz: sd[2])
            findings.append(Finding(
                .ordinalNesting, case: id, file: paths[k],
                "nested mask \(k + 1) ('\(GeometryChecks.base(paths[k]))') covers \(o.count) pixels outside mask \(k) ('\(GeometryChecks.base(paths[k - 1]))'), the first at \(g.coordText(o.first)); counting masks then gives those pixels the wrong class.",
                fix: "clip mask \(k + 1) to mask \(k) (mask\(k + 1) & mask\(k)) or correct the annotation",
                details: [("mask", .int(k + 1)), ("pixels", .int(o.count)), ("first", .ints(g.coords(o.first)))],
                magnitude: Double(o.count)))
        }
        let k = masks.count + 1
        var counts = [Int](repeating: 0, count: k)
        for c in codes { counts[Int(c)] += 1 }
        let mc = MaskCodes(codes: codes, classValues: (0..<k).map { .number(Double($0)) }, undeclaredValues: [],
                           classCounts: counts, undeclaredCounts: [0])
        return (mc, findings, marks)
    }

    // MARK: - structure

    package func structureChecks(_ mc: MaskCodes, grid: Grid, affine: Affine4, path: String, caseID id: String,
                         result r: inout CaseResult) -> MaskStructure? {
        let names = { (c: Int) in self.className(c, values: mc.classValues) }
        let foreground = mc.classCounts.dropFirst().reduce(0, +)
        if foreground == 0 {
            r.findings.append(Finding(
                .maskEmpty, case: id, file: path,
                "mask has no foreground: all \(grid.count) \(grid.is2D ? "pixels" : "voxels") are \(names(0)).",
                fix: "check that this is the right mask; drop the case, or keep it on purpose as a negative example",
                details: [("voxels", .int(grid.count))], magnitude: 1))
            return nil
        }
        guard options.scope == .all else { return nil }
        let full = options.connectivity == 26 || options.connectivity == 8
        let connText = grid.is2D ? (full ? "8" : "4") : (full ? "26" : "6")
        let unit = grid.is2D ? "pixels" : "voxels"
        let ordinal = labels?.ordinal == true || (labels == nil && r.nestedMasks.count > 0)
        let sa = grid.is2D ? 2 : geometry.sourceSliceAxis(affine)
        let s = MaskStructure.analyse(codes: mc.codes, grid: grid, classCount: mc.classValues.count, ordinal: ordinal,
                                      full: full, minComponentSize: options.minComponentSize, sliceAxis: sa)
        // Small components, per class.
        var byClass: [Int: [MaskStructure.Component]] = [:]
        var largest: [Int: Int] = [:]
        for c in s.components {
            largest[Int(c.cls)] = max(largest[Int(c.cls)] ?? 0, c.size)
            if c.size < options.minComponentSize { byClass[Int(c.cls), default: []].append(c) }
        }
        for cls in byClass.keys.sorted() {
            let small = byClass[cls]!.sorted { $0.size > $1.size || ($0.size == $1.size && $0.first < $1.first) }
            let sizes = small.map(\.size)
            let all = s.components.filter { Int($0.cls) == cls }.count
            r.findings.append(Finding(
                .smallComponent, case: id, file: path,
                "class \(names(cls)) has \(small.count) of its \(all) connected components below \(options.minComponentSize) \(unit) (sizes \(sizes.prefix(8).map(String.init).joined(separator: ", "))\(sizes.count > 8 ? "…" : ""); \(connText)-connectivity), the largest of them at \(grid.coordText(small[0].first)); its largest component has \(largest[cls] ?? 0) \(unit).",
                fix: "remove specks below \(options.minComponentSize) \(unit) or check them; raise or lower --min-component if this size is meaningful",
                details: [("class", .int(cls)), ("count", .int(small.count)), ("components", .int(all)),
                          ("sizes", .ints(Array(sizes.prefix(64)))), ("connectivity", .int(Int(connText)!)),
                          ("first", .ints(grid.coords(small[0].first)))],
                magnitude: Double(small.count)))
        }
        guard ordinal else { return s }
        let axisName = ["x", "y", "z"][sa]
        if s.contactFaces > 0 {
            let pairs = s.contactPairs.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key.lexicographicallyPrecedes($1.key)) }
            let pairText = pairs.map { "\(names($0.key[0]))–\(names($0.key[1])) \($0.value)" }.joined(separator: ", ")
            let share = Double(s.contactFaces) / Double(max(1, s.transitions))
            let worst = s.worstSlice.map { grid.is2D ? "" : "; worst slice \(axisName) \($0.index) with \($0.faces) faces" } ?? ""
            let between = pairs.first.map { p in (p.key[0] + 1..<p.key[1]).map { names($0) }.joined(separator: ", ") } ?? ""
            r.findings.append(Finding(
                .ordinalContact, case: id, file: path,
                "classes more than one step apart touch across \(s.contactFaces) faces (\(s.contactVoxels) \(unit), \(GeometryChecks.fmt(100 * share, 2))% of the \(s.transitions) class transitions): \(pairText)\(worst).",
                fix: "check where the layer between them (\(between)) is missing; ordinal contact-surface losses assume it is there",
                details: [("faces", .int(s.contactFaces)), ("voxels", .int(s.contactVoxels)), ("transitions", .int(s.transitions)),
                          ("share", .number(share)),
                          ("pairs", .array(pairs.map { .object([("classes", .ints($0.key)), ("faces", .int($0.value))]) })),
                          ("slice_axis", .int(sa)),
                          ("worst_slice", s.worstSlice.map { .int($0.index) } ?? .null),
                          ("worst_slice_faces", s.worstSlice.map { .int($0.faces) } ?? .null)],
                magnitude: Double(s.contactFaces)))
        }
        if !s.nesting.isEmpty {
            let items = s.nesting.sorted { s.components[$0.component].size > s.components[$1.component].size }
            let top = items[0]
            let comp = s.components[top.component]
            let cls = Int(comp.cls)
            let classes = Set(items.map { Int(s.components[$0.component].cls) }).sorted()
            r.findings.append(Finding(
                .ordinalNesting, case: id, file: path,
                "\(items.count) region(s) of \(classes.map(names).joined(separator: ", ")) are not enclosed by the class one step below: the largest (\(comp.size) \(unit) of \(names(cls)) at \(grid.coordText(comp.first))) touches only \(top.touching.map(names).joined(separator: ", ")) below it, never \(names(cls - 1)).",
                fix: "add the missing \(names(cls - 1)) layer around it, or relabel the region",
                details: [("regions", .int(items.count)),
                          ("items", .array(items.prefix(32).map { it in
                              let c = s.components[it.component]
                              return .object([("class", .int(Int(c.cls))), ("size", .int(c.size)), ("first", .ints(grid.coords(c.first))),
                                              ("touching", .ints(it.touching)), ("faces", .int(it.farFaces))])
                          }))],
                magnitude: Double(items.reduce(0) { $0 + s.components[$1.component].size })))
        }
        if !s.holes.isEmpty {
            let holes = s.holes.sorted { $0.size > $1.size || ($0.size == $1.size && $0.first < $1.first) }
            let big = holes[0]
            let totalVoxels = holes.reduce(0) { $0 + $1.size }
            r.findings.append(Finding(
                .ordinalHole, case: id, file: path,
                "\(holes.count) hole(s) inside ordinal layers (\(totalVoxels) \(unit)): the largest, \(big.size) \(unit) of \(big.fill.map(names).joined(separator: ", ")) at \(grid.coordText(big.first)), is enclosed by \(names(big.level)) and above.",
                fix: Self.holeFix(big, names: names),
                details: [("holes", .int(holes.count)), ("voxels", .int(totalVoxels)),
                          ("items", .array(holes.prefix(32).map { h in
                              .object([("size", .int(h.size)), ("enclosing_class", .int(h.level)), ("fill", .ints(h.fill)),
                                       ("first", .ints(grid.coords(h.first)))])
                          }))],
                magnitude: Double(totalVoxels)))
        }
        return s
    }
}
