// On-device sentiment classification with the LiteRT CompiledModel API (com.google.ai.edge.litert:litert:2.x).
//
// Copy into app/src/main/assets/ what `make edge-export` wrote to edge/out/:
//   tflite/student.int8.tflite (or student.tflite), mobile/vocab.txt, mobile/labels.json, mobile/meta.json
//
// NNAPI: deprecated since Android 15 (API 35) and no longer the way to reach NPUs; CompiledModel picks the
// accelerator (Accelerator.CPU / GPU / NPU) instead. Where NNAPI still matters (a fleet of Android 10-14 devices with
// a vendor NNAPI driver), use the classic Interpreter with NnApiDelegate (see README.md), and keep CPU as fallback.
package dev.llmdeploy.edge

import android.content.Context
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import org.json.JSONArray
import org.json.JSONObject
import kotlin.math.exp

class SentimentClassifier(context: Context, accelerator: Accelerator = Accelerator.CPU) : AutoCloseable {
    private val meta = JSONObject(context.assets.open("meta.json").bufferedReader().use { it.readText() })
    private val labels: List<String> = JSONArray(
        context.assets.open("labels.json").bufferedReader().use { it.readText() }
    ).let { arr -> List(arr.length()) { arr.getString(it) } }
    private val maxSeqLen = meta.getInt("max_seq_len")
    private val tokenizer = WordPieceTokenizer(
        context.assets.open("vocab.txt").bufferedReader().readLines(), maxSeqLen
    )

    private val model = CompiledModel.create(
        context.assets,
        meta.getString("tflite_model"),
        CompiledModel.Options(accelerator),
    )

    // Buffers by signature name: the flatbuffer's positional input order (meta.json "tflite_inputs") is not
    // guaranteed to be (input_ids, attention_mask), names are.
    private val outputName = meta.getString("tflite_output")
    private val inputs = mapOf(
        "input_ids" to model.createInputBuffer("input_ids"),
        "attention_mask" to model.createInputBuffer("attention_mask"),
    )
    private val outputs = mapOf(outputName to model.createOutputBuffer(outputName))

    data class Prediction(val label: String, val probabilities: Map<String, Float>)

    fun classify(text: String): Prediction {
        val enc = tokenizer.encode(text)
        inputs.getValue("input_ids").writeInt(enc.inputIds)
        inputs.getValue("attention_mask").writeInt(enc.attentionMask)
        model.run(inputs, outputs)
        val logits = outputs.getValue(outputName).readFloat()
        val max = logits.max()
        val e = logits.map { exp((it - max).toDouble()) }
        val sum = e.sum()
        val probs = labels.indices.associate { labels[it] to (e[it] / sum).toFloat() }
        return Prediction(labels[logits.indices.maxBy { logits[it] }], probs)
    }

    override fun close() {
        inputs.values.forEach { it.close() }
        outputs.values.forEach { it.close() }
        model.close()
    }
}
