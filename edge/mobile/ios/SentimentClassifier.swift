// On-device sentiment classification with Core ML (iOS 16+ / macOS 13+).
//
// Add to the app bundle what `make edge-export` wrote to edge/out/: coreml/student.mlpackage (Xcode compiles it to
// student.mlmodelc), mobile/vocab.txt, mobile/labels.json, mobile/meta.json.
import CoreML
import Foundation

public final class SentimentClassifier {
    public struct Prediction {
        public let label: String
        public let probabilities: [String: Float]
    }

    private let model: MLModel
    private let tokenizer: WordPieceTokenizer
    private let labels: [String]
    private let maxSeqLen: Int

    public init(bundle: Bundle = .main, computeUnits: MLComputeUnits = .all) throws {
        let metaURL = bundle.url(forResource: "meta", withExtension: "json")!
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: metaURL)) as! [String: Any]
        maxSeqLen = meta["max_seq_len"] as! Int
        labels = try JSONDecoder().decode([String].self, from: Data(contentsOf: bundle.url(forResource: "labels", withExtension: "json")!))
        tokenizer = try WordPieceTokenizer(vocabURL: bundle.url(forResource: "vocab", withExtension: "txt")!, maxSeqLen: maxSeqLen)
        let config = MLModelConfiguration()
        config.computeUnits = computeUnits  // .all lets Core ML use the Neural Engine where the ops allow
        model = try MLModel(contentsOf: bundle.url(forResource: "student", withExtension: "mlmodelc")!, configuration: config)
    }

    public func classify(_ text: String) throws -> Prediction {
        let enc = tokenizer.encode(text)
        let shape = [1, NSNumber(value: maxSeqLen)] as [NSNumber]
        let ids = try MLMultiArray(shape: shape, dataType: .int32)
        let mask = try MLMultiArray(shape: shape, dataType: .int32)
        for i in 0..<maxSeqLen {
            ids[i] = NSNumber(value: enc.inputIds[i])
            mask[i] = NSNumber(value: enc.attentionMask[i])
        }
        let input = try MLDictionaryFeatureProvider(dictionary: ["input_ids": ids, "attention_mask": mask])
        let out = try model.prediction(from: input)
        guard let logits = out.featureValue(for: "logits")?.multiArrayValue else {
            throw NSError(domain: "SentimentClassifier", code: 1, userInfo: [NSLocalizedDescriptionKey: "no logits output"])
        }
        let values = (0..<labels.count).map { Float(truncating: logits[$0]) }
        let m = values.max()!
        let e = values.map { expf($0 - m) }
        let sum = e.reduce(0, +)
        var probs: [String: Float] = [:]
        for (i, l) in labels.enumerated() { probs[l] = e[i] / sum }
        let best = values.indices.max { values[$0] < values[$1] }!
        return Prediction(label: labels[best], probabilities: probs)
    }
}
