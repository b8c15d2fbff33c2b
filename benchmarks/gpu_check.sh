#!/usr/bin/env bash
# The checks that need a GPU, as one script (CI never runs it); run from the repository root on a CUDA machine:
#   1. DDP with the NCCL backend (benchmarks/ddp_cuda_check.py)
#   2. the speed benchmark (benchmarks/speed.py) on cuda
#   3. SASRec vs FAME on MovieLens-100K trained on cuda (full softmax, to early stopping)
#   4. the shared conformance suite with every model on cuda (CTRKIT_TEST_DEVICE=cuda)
# Output goes to $OUT (default ./gpu-check): gpu_check.log plus the speed JSON/table, the sequential report as
# seq.tgz and the conformance log. Peer libraries for the speed benchmark come from wheels in .whl/ when present
# (pip install --target, no network); without them those contenders are skipped.
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONWARNINGS=ignore
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L
$PY -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0))"
nproc

echo "== 1. DDP with NCCL"; t0=$SECONDS
timeout ${DDP_TIMEOUT:-90} $PY benchmarks/ddp_cuda_check.py --nprocs 1 2
echo "(ddp: exit $?, $((SECONDS - t0)) s)"

echo "== 2. speed benchmark on cuda"; t0=$SECONDS
timeout ${SPEED_TIMEOUT:-180} $PY benchmarks/speed.py --device cuda --repeats ${SPEED_REPEATS:-2} --epochs 2 \
  --json "$OUT/speed_cuda.json" > "$OUT/speed_cuda.md"
echo "(speed: exit $?, $((SECONDS - t0)) s)"; cat "$OUT/speed_cuda.md"

echo "== 3. SASRec vs FAME on cuda"; t0=$SECONDS
timeout ${SEQ_TIMEOUT:-130} $PY benchmarks/sequential_compare.py --device cuda --seeds 3 --jobs 3 --dim 64 \
  --lr 0.001 --negatives 0 --epochs ${SEQ_EPOCHS:-100} --patience 10 --out /tmp/seq-report
echo "(seq: exit $?, $((SECONDS - t0)) s)"; tar czf "$OUT/seq.tgz" -C /tmp seq-report 2>/dev/null

echo "== 4. conformance suite on cuda"; t0=$SECONDS
CTRKIT_TEST_DEVICE=cuda timeout ${CONFORMANCE_TIMEOUT:-170} $PY -m pytest -q -p no:cacheprovider -o addopts="" \
  -n ${XDIST:-8} tests/models/test_conformance.py > "$OUT/conformance_cuda.log" 2>&1
echo "(conformance: exit $?, $((SECONDS - t0)) s)"; tail -30 "$OUT/conformance_cuda.log"
