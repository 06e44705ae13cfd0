#!/usr/bin/env bash
# One prepared GPU check, at most 8 minutes: training throughput on CUDA (benchmarks/train_speed.py),
# then 3 epochs of each recipe (configs/fast.yaml, configs/budget.yaml) on CUDA, printing img/s and
# aflw_val NME. Run it from the project root whenever a GPU is at hand:
#   bash benchmarks/gpu_check.sh            # writes under results/gpu_check/ (ignored by git)
# The trainer takes the GPU by itself when torch sees one; this script refuses to run without one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 120 "$PY" benchmarks/train_speed.py --size 128 --batch-size 64 --steps 30 \
  --models mobilenetv3_small_100 efficientnet_lite0 bfm3d_mbv1_050
[ -d data/facesynthetics_100 ] || "$PY" -m facelm prepare ../shared/data/facesynthetics_100 data/facesynthetics_100
for recipe in fast budget; do
  out=results/gpu_check/$recipe
  start=$(date +%s)
  timeout 150 "$PY" -m facelm distill --config configs/$recipe.yaml --out "$out" --threads 4 \
    results_dir=results/gpu_check train.epochs=3 train.workers=4
  "$PY" - "$out" "$recipe" "$(( $(date +%s) - start ))" <<'PYEOF'
import json, sys
out, recipe, seconds = sys.argv[1:]
m = json.load(open(f"{out}/metrics.json"))
print(f"gpu_check {recipe}: {m['epochs']} epochs in {seconds} s, {m['train_img_s']:.0f} train img/s, "
      f"aflw_val NME/384 x100 {m['val_nme_384']:.3f}, {m['size_mb']:.2f} MB")
PYEOF
done
