#!/usr/bin/env bash
# The GPU check of issue #21: CUDA exactness tests, then lgkit's throughput on random-weight
# models with the exact shapes of Qwen2-1.5B (28 layers) and Llama-3.1-8B (32 layers), on
# released GSM8K detailed- and none-CoT examples, in float32 and bfloat16, against the naive
# method and a bare forward+backward; one summary table (targets met or not) and the
# projected time of the paper's full grid; then the in-step training measurement (issue #28):
# fine-tuning the Qwen2-1.5B shape with SpectraCallback(instep_every=K), every 10th step and
# every step, against the same steps without it (benchmarks/train_overhead.py).
#
# Usage (repo root, after `bash scripts/setup.sh`):
#   bash benchmarks/gpu_check.sh               # one H200-class GPU, about 9 minutes
#   bash benchmarks/gpu_check.sh --dry-run     # the same steps on the CPU, tiny models (rehearsal)
#   bash benchmarks/gpu_check.sh --pack .gpucheck   # copy the data + tokenizer a bare GPU box lacks
# Options: --size h200|tiny, --budget SECONDS (whole run), --out DIR (default benchmarks/results),
#          --tar (also OUT/gpu_check-SIZE.tar.gz of the folder), --data-dir DIR, --tokenizer DIR.
# Writes OUT/gpu_check-SIZE/: steps.tsv, logs/, tests.xml, runs/*.json (+ torch.profiler output
# when a target is missed), train/*.json, summary.json. Exit status 0 when every step ran ok (targets
# missed are results, not failures), 1 when a step failed or timed out, 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

SIZE=h200 OUT=benchmarks/results BUDGET="" TAR=0 PACK="" DATA_DIR="" TOKENIZER=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) SIZE=tiny ;;
        --size) SIZE=${2:?--size needs a value}; shift ;;
        --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --tar) TAR=1 ;;
        --pack) PACK=${2:?--pack needs a folder}; shift ;;
        --data-dir) DATA_DIR=${2:?}; shift ;;
        --tokenizer) TOKENIZER=${2:?}; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SIZE" in h200|tiny) ;; *) echo "gpu_check.sh: --size must be h200 or tiny" >&2; exit 2 ;; esac

# Python: $PYTHON, else the project's .venv, else python3 (a GPU image's own torch);
# lgkit is imported from this checkout either way
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
[ -d .gpucheck ] && [ -z "$TOKENIZER" ] && [ -d .gpucheck/tokenizer ] && TOKENIZER=.gpucheck/tokenizer
if [ -z "$DATA_DIR" ]; then
    for d in "${LGKIT_DATA_DIR:-}" .gpucheck/data ../shared/data/layer_gradient; do
        if [ -n "$d" ] && [ -d "$d/cot_500" ]; then DATA_DIR=$d; break; fi
    done
fi
DETAILED=${DATA_DIR:-missing}/cot_500/gsm8k_train_with_cot_gpt4o.json
NONE=${DATA_DIR:-missing}/cot_500/gsm8k_train_no_cot.json

if [ -n "$PACK" ]; then  # prepare what a bare GPU machine cannot fetch: data files, a tokenizer
    [ -f "$DETAILED" ] && [ -f "$NONE" ] || { echo "gpu_check.sh: released data not found (set LGKIT_DATA_DIR)" >&2; exit 2; }
    mkdir -p "$PACK/data/cot_500"
    cp "$DETAILED" "$NONE" "$PACK/data/cot_500/"
    "$PY" -c "import sys; from lgkit.models import load_model; load_model('smollm2-135m-instruct', device='cpu').tokenizer.save_pretrained(sys.argv[1])" "$PACK/tokenizer"
    echo "packed $(du -sh "$PACK" | cut -f1) into $PACK: carry it to the GPU machine (run with carry=[\"$PACK\"]; $PACK/ is git-ignored)"
    exit 0
fi

if [ "$SIZE" = tiny ]; then
    : "${BUDGET:=110}"
    DEVICE=cpu TEST_DEVICE=cpu
    QWEN=(--model tiny-random-qwen2 --target-speedup 20)   # stand-ins for the two shapes
    LLAMA=(--model tiny-random-llama-gqa --target-speedup 50)
    COMMON=(--n 2 --max-length 512 --rounds 2 --batch-size 2 --naive-layers 1 --time-budget 10)
    QWEN_SIZE=() LLAMA_SIZE=()
    TRAIN=(--model tiny-random-llama --batch-size 2 --max-length 1024 --rounds 1 --heldout 0)
    TRAIN10=(--every 2 --instep-every 2) TRAIN1=(--every 2 --instep-every 1)
    # generous per-step limits (a shared, loaded machine); the budget bounds the whole run
    LIMITS=(env 120 tests 300 bench-qwen2 300 bench-llama 300 train-instep10 120 train-instep1 120)
else
    : "${BUDGET:=560}"
    DEVICE=cuda TEST_DEVICE=cuda
    QWEN=(--model config:qwen2-1.5b) LLAMA=(--model config:llama-3.1-8b)
    COMMON=(--max-length 1024 --rounds 2 --batch-size 8 --check-layers 2)
    QWEN_SIZE=(--n 16 --naive-n 2 --naive-layers 4 --time-budget 25)
    # the naive method's full SVDs (4096x4096 on Llama) dominate: 1-2 examples, a few layers
    LLAMA_SIZE=(--n 8 --naive-n 1 --naive-layers 1 --time-budget 30)
    # full fine-tuning (AdamW, float32) of the Qwen2-1.5B shape: ~24 GB of weights and state
    TRAIN=(--model config:qwen2-1.5b --batch-size 4 --max-length 1024 --rounds 1 --heldout 0)
    TRAIN10=(--every 10 --instep-every 10) TRAIN1=(--every 5 --instep-every 1)
    LIMITS=(env 60 tests 150 bench-qwen2 150 bench-llama 240 train-instep10 90 train-instep1 60)
fi
COMMON+=(--profile-on-miss always)
[ -n "$TOKENIZER" ] && COMMON+=(--tokenizer "$TOKENIZER")

RUN_DIR=$OUT/gpu_check-$SIZE
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/runs"
STEPS=$RUN_DIR/steps.tsv
: > "$STEPS"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
echo "gpu_check: size $SIZE, budget ${BUDGET}s, python $PY, data ${DATA_DIR:-none}, output $RUN_DIR"

limit_of() {  # the step's own time limit
    local i
    for ((i = 0; i < ${#LIMITS[@]}; i += 2)); do
        [ "${LIMITS[i]}" = "$1" ] && { echo "${LIMITS[i + 1]}"; return; }
    done
    echo 60
}

# run_step NAME COMMAND...: within min(own limit, time left), output to logs/NAME.log and the
# console; records ok / failed / timeout / skipped and carries on whatever happened
run_step() {
    local name=$1 limit left t0 rc status note=""
    shift
    limit=$(limit_of "$name")
    left=$((DEADLINE - $(date +%s) - 15))  # 15 s kept for the summary
    if [ "$left" -lt 10 ]; then
        printf '%s\tskipped\t0\t0\tno time left in the %ss budget\n' "$name" "$BUDGET" >>"$STEPS"
        echo "== $name: skipped (budget spent)"; return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s): $*"
    t0=$(date +%s)
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$RUN_DIR/logs/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    case "$rc" in
        0) status=ok ;;
        124|137) status=timeout; note="stopped at ${limit}s (what it wrote so far is kept)" ;;
        *) status=failed; note="exit $rc: $(grep -v '^\s*$' "$RUN_DIR/logs/$name.log" | tail -n 1 | tr '\t' ' ' | cut -c1-400)" ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - t0))" "$note" >>"$STEPS"
    echo "== $name: $status"
}

skip_step() {
    printf '%s\tskipped\t0\t0\t%s\n' "$1" "$2" >>"$STEPS"
    echo "== $1: skipped ($2)"
}

ENV_CHECK='
import shutil, sys, torch, transformers
want = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA build: {torch.version.cuda}), transformers {transformers.__version__}")
if want == "cuda":
    if not torch.cuda.is_available():
        if torch.version.cuda is None and shutil.which("nvidia-smi"):
            sys.exit("a GPU is present (nvidia-smi) but this torch is the CPU build. Install the CUDA build: "
                     "`.venv/bin/pip uninstall -y torch && .venv/bin/pip install --index-url https://pypi.org/simple "
                     "torch==2.13.0` (the PyPI Linux wheel is the CUDA build; it pulls the nvidia-* libraries), "
                     "or run with PYTHON=<a python whose torch has CUDA>")
        sys.exit("no CUDA device visible to torch: this check needs one GPU (use --dry-run for the CPU rehearsal)")
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
import lgkit
print(f"lgkit from {lgkit.__file__}")
'
run_step env "$PY" -c "$ENV_CHECK" "$DEVICE"
ENV_OK=$(awk -F'\t' '$1=="env"{print $2}' "$STEPS")

if [ "$ENV_OK" != ok ]; then
    skip_step tests "the env step failed"
else
    run_step tests env LGKIT_TEST_DEVICE="$TEST_DEVICE" "$PY" -m pytest -q -p no:cacheprovider -m gpu \
        tests/test_gpu.py --junitxml="$RUN_DIR/tests.xml" -o junit_family=xunit1
fi

bench() {  # bench STEP ARGS...: both dtypes and both data files in one process
    local name=$1
    shift
    if [ "$ENV_OK" != ok ]; then skip_step "$name" "the env step failed"; return 0; fi
    if [ ! -f "$DETAILED" ] || [ ! -f "$NONE" ]; then
        skip_step "$name" "released data not found (LGKIT_DATA_DIR, .gpucheck/data or ../shared; see --pack)"; return 0
    fi
    run_step "$name" "$PY" benchmarks/throughput.py "$@" --device "$DEVICE" --dtype float32,bfloat16 \
        --data "$DETAILED,$NONE" --out-dir "$RUN_DIR/runs" "${COMMON[@]}"
}
bench bench-qwen2 "${QWEN[@]}" "${QWEN_SIZE[@]}"
bench bench-llama "${LLAMA[@]}" "${LLAMA_SIZE[@]}"

train() {  # train STEP ARGS...: in-step spectra's share of fine-tuning, alternating rounds
    local name=$1
    shift
    if [ "$ENV_OK" != ok ]; then skip_step "$name" "the env step failed"; return 0; fi
    if [ ! -f "$DETAILED" ]; then skip_step "$name" "released data not found"; return 0; fi
    mkdir -p "$RUN_DIR/train"
    local tok=()
    [ -n "$TOKENIZER" ] && tok=(--tokenizer "$TOKENIZER")
    run_step "$name" "$PY" benchmarks/train_overhead.py "$@" "${TRAIN[@]}" "${tok[@]}" \
        --device "$DEVICE" --data "$DETAILED" --out "$RUN_DIR/train/$name.json"
}
train train-instep10 "${TRAIN10[@]}"
train train-instep1 "${TRAIN1[@]}"

set +e
timeout 60 "$PY" benchmarks/gpu_summary.py "$RUN_DIR" "$SIZE" 2>&1 | tee "$RUN_DIR/logs/summary.log"
SUMMARY_RC=${PIPESTATUS[0]}
set -e
[ "$TAR" = 1 ] && tar -czf "$OUT/gpu_check-$SIZE.tar.gz" -C "$OUT" "gpu_check-$SIZE" && echo "wrote $OUT/gpu_check-$SIZE.tar.gz"
echo "gpu_check: $(($(date +%s) - START))s in all"
if [ "$SUMMARY_RC" -ne 0 ] || awk -F'\t' '$2!="ok"{bad=1} END{exit !bad}' "$STEPS"; then exit 1; fi
exit 0
