#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see BENCHMARKS.md "Prediction throughput"
# and "Label-noise detectors"). Writes its results under $OUT (default ./device_out).
#
#   bash benchmarks/device_check.sh            # full: throughput + 3 bench-noise seeds
#   SCALE=tiny bash benchmarks/device_check.sh # a CPU smoke run of the same steps, sizes that mean nothing
#
# 1. prediction throughput vs decode-only for the demo model, resnet18 and resnet50 at 512x384;
# 2. `python -m audit bench-noise` on three seeds with GPU training (bigger demo, input and budget
#    than the CPU default), keeping each seed's run so the detectors can be studied afterwards on CPU.
set -u -o pipefail
OUT=${OUT:-device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
SCALE=${SCALE:-full}
if [ "$SCALE" = tiny ]; then
  DATA_PEOPLE=6; DATA_EVAL=12; MODELS=demo,resnet18; LIMIT="--limit 40"; REPEATS=1
  NOISE="--people 12 --eval 6 --epochs 1 --folds 2 --img-size 64 48"; SEEDS="0"
else
  DATA_PEOPLE=150; DATA_EVAL=300; MODELS=demo,resnet18,resnet50; LIMIT=""; REPEATS=2
  NOISE="--people ${NOISE_PEOPLE:-600} --eval 300 --epochs ${NOISE_EPOCHS:-20} --folds 3 --img-size 128 96"
  SEEDS=${SEEDS:-"0 1 2"}
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  nproc
  $PY -c "import torch, timm, pandas, sklearn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__, 'pandas', pandas.__version__)"
} 2>&1 | tee "$OUT/env.txt"

t0=$(date +%s)
$PY -m audit make-demo /tmp/dc_data --people $DATA_PEOPLE --eval $DATA_EVAL --force 2>&1 | tail -n 3
echo "drew the throughput data in $(( $(date +%s) - t0 )) s"
$PY benchmarks/bench_predict.py --data /tmp/dc_data --models $MODELS --configs default \
    --batch-size 128 --repeats $REPEATS $LIMIT 2>&1 | tee "$OUT/predict.md"

for seed in $SEEDS; do
  t0=$(date +%s)
  rm -rf "/tmp/dc_noise$seed"
  $PY -m audit bench-noise --seed "$seed" $NOISE --json --keep "/tmp/dc_noise$seed" \
      >"$OUT/noise_seed$seed.json" 2>"$OUT/noise_seed$seed.log"
  echo "bench-noise seed $seed: rc $? in $(( $(date +%s) - t0 )) s"
  tail -n 4 "$OUT/noise_seed$seed.log"
  # the run (predictions + embeddings), the truth and the model card: enough to rescore on CPU
  tar -czf "$OUT/noise_run$seed.tgz" -C "/tmp/dc_noise$seed" run data/truth.csv weights/model.json 2>/dev/null
done
ls -la "$OUT"
