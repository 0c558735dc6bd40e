// BERT WordPiece pre-processing that matches the vocab the edge pipeline exports (edge/out/mobile/vocab.txt).
// Same steps as the Python side (tokenizers' BertWordPieceTokenizer, lowercase + strip accents):
//   1. lower-case, NFD-normalise and drop combining marks (accents);
//   2. split on whitespace, around punctuation and around every CJK character;
//   3. greedy longest-match WordPiece with "##" continuations, [UNK] when a word cannot be covered;
//   4. [CLS] ... [SEP], truncated and padded ([PAD] = 0, mask 0) to the model's static length.
// tests/edge/test_pipeline.py::test_mobile_files_match_the_tokenizer checks this algorithm against the pipeline.
package dev.llmdeploy.edge

import java.text.Normalizer

class WordPieceTokenizer(vocabLines: List<String>, private val maxSeqLen: Int) {
    private val vocab: Map<String, Int> = vocabLines.withIndex().associate { (i, tok) -> tok to i }
    private val pad = id("[PAD]")
    private val unk = id("[UNK]")
    private val cls = id("[CLS]")
    private val sep = id("[SEP]")

    private fun id(token: String): Int =
        vocab[token] ?: throw IllegalArgumentException("vocab.txt has no $token: wrong file?")

    data class Encoded(val inputIds: IntArray, val attentionMask: IntArray)

    fun encode(text: String): Encoded {
        val pieces = ArrayList<Int>()
        pieces.add(cls)
        for (word in basicTokenize(text)) {
            pieces.addAll(wordPiece(word))
            if (pieces.size >= maxSeqLen - 1) break
        }
        val body = pieces.take(maxSeqLen - 1) + sep
        val ids = IntArray(maxSeqLen) { pad }
        val mask = IntArray(maxSeqLen)
        body.forEachIndexed { i, v -> ids[i] = v; mask[i] = 1 }
        return Encoded(ids, mask)
    }

    private fun basicTokenize(text: String): List<String> {
        val folded = Normalizer.normalize(text.lowercase(), Normalizer.Form.NFD)
            .filter { Character.getType(it) != Character.NON_SPACING_MARK.toInt() }
        val words = ArrayList<String>()
        val cur = StringBuilder()
        fun flush() { if (cur.isNotEmpty()) { words.add(cur.toString()); cur.clear() } }
        for (c in folded) {
            when {
                c.isWhitespace() -> flush()
                isCjk(c) || isPunctuation(c) -> { flush(); words.add(c.toString()) }
                Character.isISOControl(c) -> Unit
                else -> cur.append(c)
            }
        }
        flush()
        return words
    }

    private fun wordPiece(word: String): List<Int> {
        if (word.length > MAX_CHARS_PER_WORD) return listOf(unk)
        val out = ArrayList<Int>()
        var start = 0
        while (start < word.length) {
            var end = word.length
            var found: Int? = null
            while (end > start) {
                val piece = (if (start > 0) "##" else "") + word.substring(start, end)
                found = vocab[piece]
                if (found != null) break
                end--
            }
            if (found == null) return listOf(unk)
            out.add(found)
            start = end
        }
        return out
    }

    private fun isCjk(c: Char): Boolean {
        val cp = c.code
        return cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0xF900..0xFAFF
    }

    private fun isPunctuation(c: Char): Boolean {
        val cp = c.code
        if (cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126) return true
        return when (Character.getType(c).toByte()) {
            Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
            Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
            Character.OTHER_PUNCTUATION -> true
            else -> false
        }
    }

    companion object {
        const val MAX_CHARS_PER_WORD = 100
    }
}
