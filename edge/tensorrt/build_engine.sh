#!/usr/bin/env bash
# Build a TensorRT INT8 engine from the explicit Q/DQ ONNX variant (edge/out/onnx/student.qdq.onnx).
#
# Needs a GPU host with TensorRT 10+ (trtexec on PATH). It cannot run on the CPU-only dev/CI machines, nor on the
# project's benchmark GPU machine (no TensorRT there): `make edge-export` produces the ONNX, this script is the step
# you run where TensorRT is. TensorRT 10/11 builds INT8 layers from the Q/DQ pairs (explicit quantization): no
# calibration cache, no --int8 calibrator; --stronglyTyped keeps the precisions the ONNX states.
#
# Usage: edge/tensorrt/build_engine.sh [ONNX] [ENGINE]
#   env MAX_BATCH (default 32), OPT_BATCH (8), MAX_SEQ (from edge/out/mobile/meta.json, else 128), OPT_SEQ (= MAX_SEQ)
set -euo pipefail

ONNX=${1:-edge/out/onnx/student.qdq.onnx}
ENGINE=${2:-edge/out/tensorrt/student.qdq.plan}
META=$(dirname "$(dirname "$ONNX")")/mobile/meta.json

die() { echo "build_engine.sh: $*" >&2; exit 1; }
command -v trtexec >/dev/null || die "trtexec not found: run this on a GPU host with TensorRT 10+ (e.g. the NGC tensorrt container)"
[[ -f "$ONNX" ]] || die "$ONNX not found: run 'make edge-export' first"

if [[ -z "${MAX_SEQ:-}" && -f "$META" ]]; then
  MAX_SEQ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["max_seq_len"])' "$META")
fi
MAX_SEQ=${MAX_SEQ:-128}
OPT_SEQ=${OPT_SEQ:-$MAX_SEQ}
MAX_BATCH=${MAX_BATCH:-32}
OPT_BATCH=${OPT_BATCH:-8}

TRT_MAJOR=$(trtexec --help 2>&1 | sed -nE 's/.*TensorRT.* v?([0-9]+)[0-9.]*.*/\1/p' | head -1)
PRECISION=(--stronglyTyped)
if [[ -n "$TRT_MAJOR" && "$TRT_MAJOR" -lt 10 ]]; then
  PRECISION=(--int8 --fp16)  # TensorRT 8/9: Q/DQ are honoured with --int8; FP16 for the float parts
fi

shape() { echo "input_ids:$1x$2,attention_mask:$1x$2"; }
mkdir -p "$(dirname "$ENGINE")"
# One optimisation profile covering batch 1..MAX_BATCH and sequence 1..MAX_SEQ, tuned for OPT_BATCH x OPT_SEQ.
trtexec \
  --onnx="$ONNX" \
  --saveEngine="$ENGINE.tmp" \
  --minShapes="$(shape 1 1)" \
  --optShapes="$(shape "$OPT_BATCH" "$OPT_SEQ")" \
  --maxShapes="$(shape "$MAX_BATCH" "$MAX_SEQ")" \
  "${PRECISION[@]}" \
  --memPoolSize=workspace:2048 \
  --skipInference
mv "$ENGINE.tmp" "$ENGINE"
echo "engine: $ENGINE"
# Latency at batch 1, sequence MAX_SEQ (compare with edge/out/report.md's CPU numbers).
trtexec --loadEngine="$ENGINE" --shapes="$(shape 1 "$MAX_SEQ")" --warmUp=500 --iterations=200 | grep -E "Latency|Throughput" || true
