#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see BENCHMARKS.md "Prediction throughput"
# and "Label-noise detectors"). Writes its results under $OUT (default ./device_out).
#
#   bash benchmarks/device_check.sh            # full: throughput + 3 bench-noise seeds
#   SCALE=tiny bash benchmarks/device_check.sh # a CPU smoke run of the same steps, sizes that mean nothing
#   STEPS=serving bash benchmarks/device_check.sh  # only step 3 (STEPS: any of predict noise serving)
#
# 1. prediction throughput vs decode-only for the demo model, resnet18 and resnet50 at 512x384;
# 2. `python -m audit bench-noise` on three seeds with GPU training (bigger demo, input and budget
#    than the CPU default), keeping each seed's run so the detectors can be studied afterwards on CPU.
# 3. serving and engines (issue #16): the full-scale replica (2,700 people + 12,600 eval files)
#    predicted with embeddings by a resnet50-class model at the files' full 512x384 in-process, on
#    Ray Data with one GPU actor, and with GPU JPEG decoding, beside the decode-only pass; the
#    model server on the GPU (benchmarks/bench_serve.py --device cuda).
set -u -o pipefail
OUT=${OUT:-device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
SCALE=${SCALE:-full}
STEPS=${STEPS:-"predict noise serving"}
want() { [[ " $STEPS " == *" $1 "* ]]; }
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

if want predict; then
t0=$(date +%s)
$PY -m audit make-demo /tmp/dc_data --people $DATA_PEOPLE --eval $DATA_EVAL --force 2>&1 | tail -n 3
echo "drew the throughput data in $(( $(date +%s) - t0 )) s"
$PY benchmarks/bench_predict.py --data /tmp/dc_data --models $MODELS --configs default \
    --batch-size 128 --repeats $REPEATS $LIMIT 2>&1 | tee "$OUT/predict.md"
fi

want noise && for seed in $SEEDS; do
  t0=$(date +%s)
  rm -rf "/tmp/dc_noise$seed"
  $PY -m audit bench-noise --seed "$seed" $NOISE --json --keep "/tmp/dc_noise$seed" \
      >"$OUT/noise_seed$seed.json" 2>"$OUT/noise_seed$seed.log"
  echo "bench-noise seed $seed: rc $? in $(( $(date +%s) - t0 )) s"
  tail -n 4 "$OUT/noise_seed$seed.log"
  # the run (predictions + embeddings), the truth and the model card: enough to rescore on CPU
  tar -czf "$OUT/noise_run$seed.tgz" -C "/tmp/dc_noise$seed" run data/truth.csv weights/model.json 2>/dev/null
done
if want serving; then
  if [ "$SCALE" = tiny ]; then SV_PEOPLE=6; SV_EVAL=12; SV_SIZE="128 96"; SV_REQ=40; else SV_PEOPLE=2700; SV_EVAL=12600; SV_SIZE="512 384"; SV_REQ=500; fi
  t0=$(date +%s)
  $PY -m audit make-demo /tmp/dc_full --people $SV_PEOPLE --eval $SV_EVAL --force 2>&1 | tail -n 1
  echo "drew the serving data in $(( $(date +%s) - t0 )) s"
  # an untrained resnet50 checkpoint at the files' size: weights do not change the speed
  $PY -c "import sys; from audit.model import create_model, save_checkpoint; h, w = map(int, sys.argv[1:3]); \
m = create_model('resnet50', pretrained=False, img_size=(h, w)); save_checkpoint(m, m.card, '/tmp/dc_r50')" $SV_SIZE
  export MASK_AUDIT_WORKSPACE=/tmp/dc_ws
  if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    SV_DEV=cuda; VARIANTS=("local:--device cuda" "ray:--engine ray --num-gpus-per-worker 1 --ray-workers 1"
                           "raygpujpeg:--engine ray --num-gpus-per-worker 1 --ray-workers 1 --gpu-decode")
  else  # the CPU smoke run of the same steps
    SV_DEV=cpu; VARIANTS=("local:--device cpu" "ray:--engine ray --ray-workers 2")
  fi
  for variant in "${VARIANTS[@]}"; do
    name=${variant%%:*}; opts=${variant#*:}
    t0=$(date +%s)
    $PY -m audit predict /tmp/dc_full --weights /tmp/dc_r50 --run /tmp/dc_runs/$name --no-reuse --batch-size 256 $opts \
        >"$OUT/serving_predict_$name.log" 2>&1
    echo "predict $name: rc $? in $(( $(date +%s) - t0 )) s: $(grep Predicted "$OUT/serving_predict_$name.log")"
    $PY -c "import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps({'timings': m['timings'], 'engine': m.get('engine')}))" \
        /tmp/dc_runs/$name/meta.json >"$OUT/serving_meta_$name.json" 2>/dev/null
  done
  $PY -c "import numpy as np, pandas as pd; a, b = (pd.read_parquet(f'/tmp/dc_runs/{n}/predictions.parquet') for n in ('local', 'ray')); \
c = [k for k in a.columns if k.startswith('p_')]; print('local vs ray max |diff|:', float(np.abs(a[c].to_numpy() - b[c].to_numpy()).max()))" \
      2>&1 | tee "$OUT/serving_equal.txt"
  $PY benchmarks/bench_predict.py --data /tmp/dc_full --models resnet50 --configs default --batch-size 256 --repeats 1 \
      2>&1 | tee "$OUT/serving_decode_only.md"
  $PY benchmarks/bench_serve.py --device $SV_DEV --requests $SV_REQ --data /tmp/dc_full --threads 1 \
      --json "$OUT/serving_bench_serve.json" 2>&1 | tail -n 6 | tee "$OUT/serving_bench_serve.md"
fi
ls -la "$OUT"
