#!/usr/bin/env bash
# The GPU measurements of docs/BENCHMARKS.md ("GPU") in one go; each part writes its own file
# under OUT as it finishes, so a run cut short still returns what it measured:
#
#     bash tools/gpu_check.sh OUT [PART ...]   PART: env tests speed compile scaling data quality
#
# From the repository root, with the python that holds torch (PYTHON, default python3).
set -uo pipefail
out=${1:?usage: bash tools/gpu_check.sh OUT [PART ...]}
shift
parts=${*:-env tests speed compile scaling data quality}
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}
paper=configs/alps_seasons.yaml
mkdir -p "$out"
log=$out/log.txt
export PYTHONUNBUFFERED=1
bench() { timeout "$1" "$py" tools/bench_train.py --device "$dev" --crop 256 "${@:2}" 2>>"$log"; }

for part in $parts; do
  echo "== $part $(date +%T)" | tee -a "$log"
  case $part in
    env)  # the package from this checkout, without touching the installed dependencies
      "$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . >>"$log" 2>&1
      { nvidia-smi; "$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; nproc
        "$py" -m pip list 2>/dev/null | grep -i -E "^(torch|triton|numpy|pillow) "; } >"$out/env.txt" 2>&1 ;;
    tests)  # the GPU-only tests first, then the whole suite (the server's without FastAPI there)
      skip=()
      "$py" -c "import fastapi, uvicorn" 2>/dev/null || skip=(--ignore tests/apps/test_serve.py)
      { timeout 120 "$py" -m pytest -q -rs -p no:cacheprovider tests/accel -k cuda
        timeout 420 "$py" -m pytest -q -rs -p no:cacheprovider "${skip[@]}" tests; } >"$out/tests.txt" 2>&1 ;;
    speed)  # 256 px crops, N = 4, batch 1 and 8: the paper config, the defaults, and what
      # DiffAugment's refusal of CUDA graphs costs the defaults
      { bench 200 --config $paper --batch 1 8 --windows 5 \
          --variants eager bf16 graphs bf16+graphs bf16+channels_last+graphs
        bench 150 --batch 1 8 --windows 5 --variants eager auto bf16 bf16+channels_last
        bench 100 --set train.diffaugment= --batch 1 8 --windows 5 --variants bf16 bf16+graphs
      } >"$out/speed.jsonl" ;;
    compile)  # compilation takes minutes per setting: apart, last in line for the time it needs
      { bench 240 --config $paper --batch 1 8 --windows 5 --variants bf16+graphs bf16+compile+graphs
        bench 240 --batch 1 8 --windows 5 --variants bf16 bf16+compile; } >"$out/compile.jsonl" ;;
    scaling)  # time and memory against N
      { bench 150 --config $paper --domains 2 8 --batch 1 8 --windows 3 --variants bf16+graphs
        bench 150 --domains 2 8 --batch 1 8 --windows 3 --variants eager bf16; } >"$out/scaling.jsonl" ;;
    data)  # the real data path: JPEG files at 286 px, as photos arrive
      d=$(mktemp -d)
      "$py" -m combogan data synth alps_seasons "$d/png" --size 286 --train 64 --test 0 -q
      "$py" - "$d/png/train" "$d/jpg" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for f in src.rglob("*.png"):
    (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
    Image.open(f).convert("RGB").save(dst / f.parent.name / f"{f.stem}.jpg", quality=92)
EOF
      { bench 150 --config $paper --data "$d/jpg" --batch 1 8 --windows 5 --variants bf16+graphs
        bench 150 --data "$d/jpg" --batch 1 8 --windows 5 --variants bf16; } >"$out/data.jsonl"
      rm -rf "$d" ;;
    quality)  # fp32 against bf16 at equal iterations: the 3% rule for the CUDA 'auto' defaults
      for prec in fp32 bf16; do
        timeout 400 "$py" tools/bench_quality.py --config configs/quality_bench.yaml --iters 2000 \
          --device "$dev" --set perf.precision=$prec >"$out/q_$prec" 2>"$out/q_$prec.err" &
      done
      wait
      for prec in fp32 bf16; do
        tail -n 1 "$out/q_$prec" >>"$out/quality.jsonl"; cat "$out/q_$prec.err" >>"$log"
        rm -f "$out/q_$prec" "$out/q_$prec.err"
      done ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
echo "== done $(date +%T)" | tee -a "$log"
