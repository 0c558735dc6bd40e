// BERT WordPiece pre-processing that matches the vocab the edge pipeline exports (edge/out/mobile/vocab.txt):
// lower-case, strip accents, split on whitespace / punctuation / CJK characters, greedy longest-match WordPiece with
// "##" continuations, [CLS] ... [SEP], padded with [PAD] (= 0) to the model's static length.
// The same algorithm is checked against the pipeline's tokenizer in tests/edge/test_pipeline.py.
import Foundation

public struct WordPieceTokenizer {
    public struct Encoded {
        public let inputIds: [Int32]
        public let attentionMask: [Int32]
    }

    static let maxCharsPerWord = 100
    private let vocab: [String: Int32]
    private let maxSeqLen: Int
    private let pad: Int32, unk: Int32, cls: Int32, sep: Int32

    public init(vocabURL: URL, maxSeqLen: Int) throws {
        let lines = try String(contentsOf: vocabURL, encoding: .utf8).components(separatedBy: "\n")
        var v: [String: Int32] = [:]
        for (i, tok) in lines.enumerated() where !tok.isEmpty { v[tok] = Int32(i) }
        func id(_ t: String) throws -> Int32 {
            guard let i = v[t] else { throw NSError(domain: "WordPiece", code: 1, userInfo: [NSLocalizedDescriptionKey: "vocab.txt has no \(t)"]) }
            return i
        }
        vocab = v
        self.maxSeqLen = maxSeqLen
        pad = try id("[PAD]"); unk = try id("[UNK]"); cls = try id("[CLS]"); sep = try id("[SEP]")
    }

    public func encode(_ text: String) -> Encoded {
        var pieces: [Int32] = [cls]
        for word in basicTokenize(text) {
            pieces += wordPiece(word)
            if pieces.count >= maxSeqLen - 1 { break }
        }
        let body = Array(pieces.prefix(maxSeqLen - 1)) + [sep]
        var ids = [Int32](repeating: pad, count: maxSeqLen)
        var mask = [Int32](repeating: 0, count: maxSeqLen)
        for (i, v) in body.enumerated() { ids[i] = v; mask[i] = 1 }
        return Encoded(inputIds: ids, attentionMask: mask)
    }

    private func basicTokenize(_ text: String) -> [String] {
        // Lower-case, decompose, drop combining marks (what strip_accents does in the Python tokenizer).
        let folded = text.lowercased().decomposedStringWithCanonicalMapping.unicodeScalars
            .filter { $0.properties.generalCategory != .nonspacingMark }
        var words: [String] = []
        var cur = ""
        func flush() { if !cur.isEmpty { words.append(cur); cur = "" } }
        for s in folded {
            if s.properties.isWhitespace {
                flush()
            } else if isCJK(s) || isPunctuation(s) {
                flush(); words.append(String(s))
            } else if s.properties.generalCategory == .control {
                continue
            } else {
                cur.unicodeScalars.append(s)
            }
        }
        flush()
        return words
    }

    private func wordPiece(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        if chars.count > Self.maxCharsPerWord { return [unk] }
        var out: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32? = nil
            while end > start {
                var piece = String(String.UnicodeScalarView(chars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unk] }
            out.append(id)
            start = end
        }
        return out
    }

    private func isCJK(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0xF900...0xFAFF).contains(v)
    }

    private func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }
}
