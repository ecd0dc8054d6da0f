/// A YAML subset parser: what `helm repo index`, chart-releaser, ChartMuseum
/// and hand-written indexes use. Block mappings and sequences (including the
/// compact `- key: value` form and sequences at their key's indent), plain,
/// single- and double-quoted scalars (multi-line, folded as YAML does), block
/// scalars (`|`, `>`, with chomping and indentation indicators), flow
/// sequences and mappings, comments, `---`, anchors and aliases, tags.
/// Not supported (refused with an error, never guessed): complex keys (`? `),
/// multiple documents with content, directives other than ignoring them.
///
/// Every node records its source lines so `IndexRewriter` can edit the text
/// and leave everything else byte-for-byte as the upstream wrote it.
public struct YAMLParser {
    private var lines: [Substring]
    /// Column where a line's content starts; moved right for `- ` items so
    /// their content parses like any other block.
    private var column: [Int]
    private var anchors: [String: YAMLNode] = [:]

    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode {
        var p = YAMLParser(text)
        return try p.parseDocument()
    }

    init(_ text: String) {
        var ls = text.split(separator: "\n", omittingEmptySubsequences: false)
        for i in ls.indices where ls[i].hasSuffix("\r") { ls[i] = ls[i].dropLast() }
        lines = ls
        column = ls.map { l in l.prefix { $0 == " " }.count }
    }

    // MARK: lines

    private func content(_ i: Int) -> Substring { lines[i].dropFirst(column[i]) }

    private func isSkippable(_ i: Int) -> Bool {
        let c = content(i)
        if c.allSatisfy({ $0 == " " || $0 == "\t" }) { return true }
        if c.first == "#" { return true }
        if column[i] == 0, c.hasPrefix("%") { return true }               // directive
        if column[i] == 0, c == "---" || c.hasPrefix("--- #") { return true }
        return false
    }

    private func nextSignificant(_ from: Int) -> Int {
        var i = from
        while i < lines.count, isSkippable(i) { i += 1 }
        return i
    }

    private func error(_ i: Int, _ m: String) -> YAMLError { YAMLError(line: i + 1, message: m) }

    // MARK: document

    private mutating func parseDocument() throws(YAMLError) -> YAMLNode {
        // "--- value" on the first line, and "..." ending the document.
        if let end = lines.firstIndex(where: { $0 == "..." }) { lines = Array(lines[..<end]); column = Array(column[..<end]) }
        let i = nextSignificant(0)
        if i < lines.count, column[i] == 0, content(i).hasPrefix("--- ") {
            column[i] = 4
        }
        guard i < lines.count else { return YAMLNode(value: .null, firstLine: 0, endLine: 0) }
        if content(i).hasPrefix("? ") { throw error(i, "complex mapping keys are not supported") }
        let (node, next) = try parseBlock(i, parentIndent: -1)
        let rest = nextSignificant(next)
        if rest < lines.count {
            if content(rest).hasPrefix("---") || content(rest) == "---" {
                throw error(rest, "multiple YAML documents are not supported")
            }
            throw error(rest, "unexpected content (indentation?)")
        }
        return node
    }

    /// A block node starting at line i (already significant).
    private mutating func parseBlock(_ i: Int, parentIndent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        let c = content(i)
        if c == "-" || c.hasPrefix("- ") || c.hasPrefix("-\t") {
            return try parseSequence(i, indent: column[i])
        }
        if c.hasPrefix("? ") { throw error(i, "complex mapping keys are not supported") }
        if try splitKey(c) != nil {
            return try parseMapping(i, indent: column[i])
        }
        return try parseScalarValue(c, line: i, parentIndent: parentIndent)
    }

    // MARK: mappings

    /// `key: rest` → (key, rest), or nil when the line is no mapping entry.
    private func splitKey(_ c: Substring) throws(YAMLError) -> (key: String, rest: Substring)? {
        try splitKeyThrowing(c)
    }

    private func splitKeyThrowing(_ c: Substring) throws(YAMLError) -> (key: String, rest: Substring)? {
        guard let first = c.first, first != "[", first != "{", first != "#", first != "|", first != ">" else { return nil }
        if first == "\"" || first == "'" {
            guard let (key, after) = scanQuoted(c) else { return nil }
            let a = after.drop { $0 == " " }
            guard a.first == ":" else { return nil }
            let rest = a.dropFirst()
            guard rest.isEmpty || rest.first == " " || rest.first == "\t" else { return nil }
            return (key, rest)
        }
        var idx = c.startIndex
        while idx < c.endIndex {
            if c[idx] == ":" {
                let n = c.index(after: idx)
                if n == c.endIndex || c[n] == " " || c[n] == "\t" {
                    var key = String(c[..<idx])
                    while key.hasSuffix(" ") { key.removeLast() }
                    return (key, c[n...])
                }
            } else if c[idx] == " " || c[idx] == "\t", c.index(after: idx) < c.endIndex, c[c.index(after: idx)] == "#" {
                return nil   // a comment begins before any ": "
            }
            idx = c.index(after: idx)
        }
        return nil
    }

    private mutating func parseMapping(_ start: Int, indent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        var pairs: [YAMLPair] = []
        var j = start
        var end = start + 1
        while true {
            j = nextSignificant(j)
            guard j < lines.count, column[j] == indent else {
                if j < lines.count, column[j] > indent { throw error(j, "unexpected indentation") }
                break
            }
            let c = content(j)
            if c == "-" || c.hasPrefix("- ") { break }
            guard let (key, restRaw) = try splitKey(c) else { throw error(j, "expected 'key: value'") }
            if pairs.contains(where: { $0.key == key }) { throw error(j, "duplicate key '\(key)'") }
            let rest = stripComment(restRaw).trimmed(" \t")
            let node: YAMLNode
            var next: Int
            if rest.isEmpty || rest.hasPrefix("&") && !rest.contains(" ") {
                let anchor = rest.hasPrefix("&") ? String(rest.dropFirst()) : nil
                let k = nextSignificant(j + 1)
                if k < lines.count, column[k] > indent || (column[k] == indent && (content(k) == "-" || content(k).hasPrefix("- "))) {
                    (node, next) = try parseBlock(k, parentIndent: indent)
                } else {
                    node = YAMLNode(value: .null, firstLine: j, endLine: j + 1)
                    next = j + 1
                }
                if let anchor { anchors[anchor] = node }
            } else {
                (node, next) = try parseInlineValue(rest, line: j, parentIndent: indent)
            }
            pairs.append(YAMLPair(key: key, keyLine: j, keyColumn: indent, node: node))
            end = max(next, j + 1)
            j = end
        }
        return (YAMLNode(value: .mapping(pairs), firstLine: start, endLine: end), end)
    }

    // MARK: sequences

    private mutating func parseSequence(_ start: Int, indent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        var items: [YAMLNode] = []
        var j = start
        var end = start + 1
        while true {
            j = nextSignificant(j)
            guard j < lines.count, column[j] == indent else { break }
            let c = content(j)
            guard c == "-" || c.hasPrefix("- ") || c.hasPrefix("-\t") else { break }
            let afterDash = c.dropFirst()
            let spaces = afterDash.prefix { $0 == " " || $0 == "\t" }.count
            let item: YAMLNode
            var next: Int
            if afterDash.dropFirst(spaces).isEmpty || afterDash.dropFirst(spaces).first == "#" {
                let k = nextSignificant(j + 1)
                if k < lines.count, column[k] > indent {
                    (item, next) = try parseBlock(k, parentIndent: indent)
                } else {
                    item = YAMLNode(value: .null, firstLine: j, endLine: j + 1)
                    next = j + 1
                }
            } else {
                // "- key: v" / "- scalar" / "- [flow]": re-read the rest of the
                // line as a block starting at its own column.
                column[j] = indent + 1 + spaces
                (item, next) = try parseBlock(j, parentIndent: indent)
                column[j] = indent
            }
            items.append(YAMLNode(value: item.value, firstLine: j, endLine: max(next, j + 1)))
            end = max(next, j + 1)
            j = end
        }
        return (YAMLNode(value: .sequence(items), firstLine: start, endLine: end), end)
    }

    // MARK: scalars and flow

    /// A value written after `key:` on the same line.
    private mutating func parseInlineValue(_ v: String, line j: Int, parentIndent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        var v = Substring(v)
        var anchor: String?
        if v.hasPrefix("&") {
            let name = v.dropFirst().prefix { $0 != " " }
            anchor = String(name)
            v = v.dropFirst(name.count + 1).drop { $0 == " " }
        }
        if v.hasPrefix("!") { v = v.drop { $0 != " " }.drop { $0 == " " } }
        let result: (YAMLNode, Int)
        if v.hasPrefix("*") {
            guard let n = anchors[String(v.dropFirst())] else { throw error(j, "unknown alias \(v)") }
            result = (YAMLNode(value: n.value, firstLine: j, endLine: j + 1), j + 1)
        } else if v.hasPrefix("|") || v.hasPrefix(">") {
            result = try parseBlockScalar(String(v), line: j, parentIndent: parentIndent)
        } else {
            result = try parseScalarValue(Substring(v), line: j, parentIndent: parentIndent)
        }
        if let anchor { anchors[anchor] = result.0 }
        return result
    }

    /// A plain, quoted or flow value starting on line j, continued on
    /// following lines indented deeper than `parentIndent`.
    private mutating func parseScalarValue(_ start: Substring, line j: Int, parentIndent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        if start.hasPrefix("|") || start.hasPrefix(">") {
            return try parseBlockScalar(String(start), line: j, parentIndent: parentIndent)
        }
        if start.hasPrefix("*") {
            let name = String(stripComment(start.dropFirst()).trimmed(" "))
            guard let n = anchors[name] else { throw error(j, "unknown alias *\(name)") }
            return (YAMLNode(value: n.value, firstLine: j, endLine: j + 1), j + 1)
        }
        if start.hasPrefix("[") || start.hasPrefix("{") {
            var text = String(start)
            var k = j + 1
            while !flowBalanced(text) {
                guard k < lines.count else { throw error(j, "unterminated flow collection") }
                text += " " + lines[k].trimmed(" \t")
                k += 1
            }
            var f = FlowParser(Array(text.unicodeScalars), line: j + 1)
            let v = try f.parseValue()
            try f.expectEnd()
            return (YAMLNode(value: v, firstLine: j, endLine: k), k)
        }
        if start.hasPrefix("\"") || start.hasPrefix("'") {
            var text = String(start)
            var k = j + 1
            while scanQuoted(Substring(text)) == nil {
                guard k < lines.count else { throw error(j, "unterminated quoted string") }
                let t = lines[k].trimmed(" \t")
                text += t.isEmpty ? "\n" : (text.hasSuffix("\n") ? t : " " + t)
                k += 1
            }
            guard let (value, after) = scanQuoted(Substring(text)) else { throw error(j, "bad quoted string") }
            let rest = stripComment(after).trimmed(" \t")
            guard rest.isEmpty else { throw error(j, "unexpected text after quoted string") }
            return (YAMLNode(value: .scalar(value), firstLine: j, endLine: k), k)
        }
        // Plain scalar, folded over continuation lines.
        var value = stripComment(start).trimmed(" \t")
        var k = j + 1
        var lastSignificant = j
        while k < lines.count {
            let raw = lines[k]
            let ind = raw.prefix { $0 == " " }.count
            let t = raw.trimmed(" \t")
            if t.isEmpty { k += 1; continue }
            // Deeper lines continue a plain scalar (YAML folds them with spaces).
            guard ind > parentIndent, !t.hasPrefix("#") else { break }
            let blank = k - lastSignificant - 1
            value += blank > 0 ? String(repeating: "\n", count: blank) : " "
            value += stripComment(Substring(t)).trimmed(" \t")
            lastSignificant = k
            k += 1
        }
        return (YAMLNode(value: .scalar(value), firstLine: j, endLine: lastSignificant + 1), lastSignificant + 1)
    }

    private func parseBlockScalar(_ header: String, line j: Int, parentIndent: Int) throws(YAMLError) -> (YAMLNode, Int) {
        let h = stripComment(Substring(header)).trimmed(" \t")
        let folded = h.hasPrefix(">")
        var chomp: Character = " "
        var explicit: Int?
        for c in h.dropFirst() {
            if c == "-" || c == "+" { chomp = c } else if let d = c.wholeNumberValue, d > 0 { explicit = d } else {
                throw error(j, "bad block scalar header '\(h)'")
            }
        }
        var k = j + 1
        var blockIndent = explicit.map { max(parentIndent, 0) + $0 }
        var body: [Substring] = []
        while k < lines.count {
            let raw = lines[k]
            let ind = raw.prefix { $0 == " " }.count
            if raw.trimmed(" \t").isEmpty {
                body.append("")
                k += 1
                continue
            }
            if blockIndent == nil {
                guard ind > parentIndent else { break }
                blockIndent = ind
            }
            guard let bi = blockIndent, ind >= bi else { break }
            body.append(raw.dropFirst(bi))
            k += 1
        }
        // Trailing blank lines belong to chomping, not to the node's lines.
        var trailing = 0
        while let last = body.last, last.isEmpty { body.removeLast(); trailing += 1 }
        let end = k - trailing
        var text = ""
        if folded {
            var prevMoreIndented = false
            for (n, l) in body.enumerated() {
                let more = l.first == " " || l.first == "\t"
                if n > 0 {
                    if l.isEmpty || body[n - 1].isEmpty || more || prevMoreIndented { text += "\n" } else { text += " " }
                }
                text += l
                prevMoreIndented = more
            }
        } else {
            text = body.joined(separator: "\n")
        }
        switch chomp {
        case "-": break
        case "+": if !body.isEmpty || trailing > 0 { text += String(repeating: "\n", count: 1 + trailing) }
        default: if !body.isEmpty { text += "\n" }
        }
        return (YAMLNode(value: .scalar(text), firstLine: j, endLine: max(end, j + 1)), max(end, j + 1))
    }

    private func flowBalanced(_ s: String) -> Bool {
        var depth = 0
        var quote: Character?
        var escaped = false
        for c in s {
            if let q = quote {
                if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
                continue
            }
            switch c {
            case "\"", "'": quote = c
            case "[", "{": depth += 1
            case "]", "}": depth -= 1
            default: break
            }
        }
        return depth <= 0 && quote == nil
    }
}

/// Strips a trailing ` # comment` outside quotes.
func stripComment(_ s: Substring) -> Substring {
    var quote: Character?
    var prev: Character = " "
    var idx = s.startIndex
    while idx < s.endIndex {
        let c = s[idx]
        if let q = quote {
            if c == q { quote = nil }
        } else if c == "#" && (prev == " " || prev == "\t") {
            return s[..<idx]
        } else if (c == "\"" || c == "'") && (prev == " " || idx == s.startIndex) {
            quote = c
        }
        prev = c
        idx = s.index(after: idx)
    }
    return s
}

/// Reads a quoted scalar at the start of `s`: (value, text after the closing quote).
func scanQuoted(_ s: Substring) -> (String, Substring)? {
    guard let q = s.first, q == "\"" || q == "'" else { return nil }
    var out = ""
    var idx = s.index(after: s.startIndex)
    while idx < s.endIndex {
        let c = s[idx]
        if q == "'" {
            if c == "'" {
                let n = s.index(after: idx)
                if n < s.endIndex, s[n] == "'" { out.append("'"); idx = s.index(after: n); continue }
                return (out, s[n...])
            }
            out.append(c)
        } else {
            if c == "\"" { return (out, s[s.index(after: idx)...]) }
            if c == "\\" {
                idx = s.index(after: idx)
                guard idx < s.endIndex else { return nil }
                switch s[idx] {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "/": out.append("/")
                case " ": out.append(" ")
                case "u", "x", "U":
                    let len = s[idx] == "u" ? 4 : s[idx] == "x" ? 2 : 8
                    let hexStart = s.index(after: idx)
                    guard let hexEnd = s.index(hexStart, offsetBy: len, limitedBy: s.endIndex),
                          let v = UInt32(s[hexStart..<hexEnd], radix: 16), let u = Unicode.Scalar(v) else { return nil }
                    out.unicodeScalars.append(u)
                    idx = s.index(before: hexEnd)
                default: out.append(s[idx])
                }
            } else {
                out.append(c)
            }
        }
        idx = s.index(after: idx)
    }
    return nil
}

/// Flow collections: `[a, "b", {k: v}]`.
struct FlowParser {
    let s: [Unicode.Scalar]
    var i = 0
    let line: Int

    init(_ s: [Unicode.Scalar], line: Int) {
        self.s = s
        self.line = line
    }

    mutating func skipSpace() { while i < s.count, s[i] == " " || s[i] == "\t" || s[i] == "\n" { i += 1 } }

    mutating func expectEnd() throws(YAMLError) {
        skipSpace()
        if i < s.count, s[i] == "#" { return }
        guard i == s.count else { throw YAMLError(line: line, message: "unexpected text after flow collection") }
    }

    mutating func parseValue() throws(YAMLError) -> YAMLValue {
        skipSpace()
        guard i < s.count else { throw YAMLError(line: line, message: "unexpected end of flow collection") }
        switch s[i] {
        case "[":
            i += 1
            var items: [YAMLNode] = []
            while true {
                skipSpace()
                guard i < s.count else { throw YAMLError(line: line, message: "unterminated [") }
                if s[i] == "]" { i += 1; break }
                items.append(YAMLNode(value: try parseValue(), firstLine: line - 1, endLine: line))
                skipSpace()
                // Each item must be followed by ',' or ']' (a stray '}' once looped forever).
                guard i < s.count else { throw YAMLError(line: line, message: "unterminated [") }
                if s[i] == "," { i += 1 } else if s[i] != "]" { throw YAMLError(line: line, message: "expected ',' or ']' in flow sequence") }
            }
            return .sequence(items)
        case "{":
            i += 1
            var pairs: [YAMLPair] = []
            while true {
                skipSpace()
                guard i < s.count else { throw YAMLError(line: line, message: "unterminated {") }
                if s[i] == "}" { i += 1; break }
                guard case .scalar(let key) = try parseScalar(stopAtColon: true) else { throw YAMLError(line: line, message: "bad flow key") }
                skipSpace()
                var value = YAMLValue.null
                if i < s.count, s[i] == ":" {
                    i += 1
                    value = try parseValue()
                }
                pairs.append(YAMLPair(key: key, keyLine: line - 1, keyColumn: 0, node: YAMLNode(value: value, firstLine: line - 1, endLine: line)))
                skipSpace()
                guard i < s.count else { throw YAMLError(line: line, message: "unterminated {") }
                if s[i] == "," { i += 1 } else if s[i] != "}" { throw YAMLError(line: line, message: "expected ',' or '}' in flow mapping") }
            }
            return .mapping(pairs)
        default:
            return try parseScalar(stopAtColon: false)
        }
    }

    mutating func parseScalar(stopAtColon: Bool) throws(YAMLError) -> YAMLValue {
        skipSpace()
        if i < s.count, s[i] == "\"" || s[i] == "'" {
            var str = String.UnicodeScalarView()
            str.append(contentsOf: s[i...])
            let sub = Substring(String(str))
            guard let (v, after) = scanQuoted(sub) else { throw YAMLError(line: line, message: "bad quoted string") }
            i = s.count - after.unicodeScalars.count
            return .scalar(v)
        }
        var out = String.UnicodeScalarView()
        while i < s.count {
            let c = s[i]
            if c == "," || c == "]" || c == "}" { break }
            if stopAtColon, c == ":", i + 1 >= s.count || s[i + 1] == " " { break }
            out.append(c)
            i += 1
        }
        let v = String(out).trimmed(" \t\n")
        return v.isEmpty || v == "~" || v == "null" ? .null : .scalar(v)
    }
}
