#!/usr/bin/env bash
# The GPU proof of optlab, in one run: prepared on a machine without a GPU, for the first
# session that is lent one. Status: PREPARED, NOT YET RUN ON A GPU (docs/benchmarks.md).
#
# Run it through the device tool from the checkout the session was started in (the tool sends
# that checkout, not a helper's worktree: this script and benchmarks/gpu_check.py must be in it,
# and the wheels in its ignored folder .whl, see benchmarks/gpu_wheels.sh):
#
#   run(command="GPU_CHECK_BUDGET_S=420 bash benchmarks/gpu_check.sh",
#       carry=[".whl"], timeout_s=480)
#
# (kind left out: an H100 does. The script stops starting steps after GPU_CHECK_BUDGET_S
# seconds and usually ends well before; timeout_s leaves a minute for the last step.) To rerun
# some steps only, in the same or a later call:
#
#   run(command="GPU_CHECK_STEPS='env wheels compare_local compare_processes compare_equal' bash benchmarks/gpu_check.sh",
#       carry=[".whl"], timeout_s=300)
#
# What comes back in $OUT (6 files): gpu_check.log (everything printed), summary.json (each
# step: status passed/failed/timeout/skipped, rc, seconds, its findings), nvidia-smi.txt,
# compare.json (per-run test metrics of local vs processes on CUDA), bench.json and bench.md
# (benchmarks/bench.py --quick --device cuda).
#
# Steps (each timed, bounded by `timeout`, allowed to fail without stopping the others):
#   env                  nvidia-smi, python/torch/CUDA versions, the GPU, a tiny matmul on it
#   wheels               the wheels of .whl installed to $GPU_CHECK_SITE (/tmp/site); then
#                        PYTHONPATH=$PWD:/tmp/site for every later step; imports checked
#   cuda_tests           pytest on the tests with CUDA paths (explicit ids: `-k cuda` would miss
#                        test_rng's GPU test); those that must run on CUDA must pass, not skip
#   rng                  tests/unit/test_rng.py: per-run CUDA random states (interleaved = alone)
#   compare_local        optlab compare quickstart --device cuda (2 epochs, local backend)
#   compare_processes    the same with --backend processes --devices cuda
#   compare_two_workers  the same with --devices cuda:0,cuda:0 (two workers share the GPU)
#   compare_equal        every run's history, fingerprints and test metrics identical across the
#                        three (as tests/functional/test_backends.py asks of local vs processes)
#   amp                  the bundled amp-clipping preset on cuda, 2 epochs, on digits (no
#                        internet there for CIFAR-10): fp32/bf16/fp16 + clipping all finish,
#                        finite losses, no "mixed precision needs CUDA" note, and each
#                        bf16/fp16 run's losses differ from its fp32 twin's (autocast acted)
#   tui_devices          tests/tui/test_tui_devices.py on the GPU machine (pynvml installed)
#   nvml_pane            the TUI's devices pane (`d`) on a live CUDA run: NVML memory and util
#   bench                benchmarks/bench.py --quick --device cuda (the only benchmark with
#                        --device), plus test_quick_bench_on_cuda's assertions on its JSON
#   fuse                 compare --fuse auto vs --fuse off on cuda (fused.py has no --device):
#                        fused runs within the CPU tests' tolerances
#   auto_device_tests    informational: tests that run with --device auto and assume it means
#                        the CPU (they may fail on a GPU box; their outcome does not decide
#                        `overall`)
#
# Settings (environment): OUT (default /tmp/gpu_check_out), PYTHON (python3), GPU_CHECK_SITE
# (/tmp/site), GPU_CHECK_DEVICE (cuda; cpu runs the same steps on the CPU to test this script
# without a GPU), GPU_CHECK_STEPS (all, or names), GPU_CHECK_BUDGET_S (420), GPU_CHECK_EPOCHS (2),
# GPU_CHECK_DRY_RUN (1: print what each step would run, run nothing but the summary),
# GPU_CHECK_KEEP_WORK (1: keep the scratch folder /tmp/gpu_check.* with every run directory).
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
export REPO
export OUT=${OUT:-/tmp/gpu_check_out}
export PY=${PYTHON:-python3}
export SITE=${GPU_CHECK_SITE:-/tmp/site}
export DEVICE=${GPU_CHECK_DEVICE:-cuda}
export EPOCHS=${GPU_CHECK_EPOCHS:-2}
STEPS=${GPU_CHECK_STEPS:-all}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
DRY=${GPU_CHECK_DRY_RUN:-0}
mkdir -p "$OUT" || exit 2
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX) || exit 2
export WORK
[ "${GPU_CHECK_KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
export DETAILS=$WORK/details
mkdir -p "$DETAILS"
export PYTHONUNBUFFERED=1 NO_COLOR=1 TEXTUAL_ANIMATIONS=none OPTLAB_NO_BROWSER=1
export OPTLAB_DATA_DIR=$WORK/data OPTLAB_PRESETS=$WORK/presets OPTLAB_CHECK_CACHE=off
export CHECK="$PY $REPO/benchmarks/gpu_check.py"
INFO_STEPS="auto_device_tests"
# Workers of the processes backend: two for the two-worker compare; cuda:0 even on the CPU run.
if [ "$DEVICE" = cpu ]; then export DEVICES_ALL=cpu DEVICES_TWO=cpu,cpu; else
    export DEVICES_ALL=cuda DEVICES_TWO=cuda:0,cuda:0; fi

cuda_here() { [ "$DEVICE" = cpu ] || [ -s "$WORK/cuda_ok" ]; }
skip() { echo "$*" >"$WORK/reason"; return 77; }
needs_cuda() { cuda_here || skip "no CUDA here (env step: torch.cuda.is_available() is False)"; }

pytest_step() {  # name, junit expectations file stem, then pytest args
    local name=$1; shift
    "$PY" -m pytest -q -rfEs -p no:cacheprovider --junitxml="$WORK/$name.xml" "$@"
    local rc=$?
    echo "pytest rc=$rc"
    local expect=()
    if [ "$DEVICE" != cpu ]; then
        [ -n "${EXPECT_RUN:-}" ] && expect+=(--expect-run $EXPECT_RUN)
        [ -n "${EXPECT_SKIP:-}" ] && expect+=(--expect-skip $EXPECT_SKIP)
    fi
    $CHECK junit "$WORK/$name.xml" --details "$DETAILS/$name.json" "${expect[@]}" || return 1
    return $rc
}

compare() {  # run dir name, then extra options
    local dir=$WORK/$1; shift
    "$PY" -m optlab compare quickstart -s "train.epochs=$EPOCHS" -q --no-charts --out "$dir" "$@"
}

# ------------------------------------------------------------------------------------ steps
s_env() {
    nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$OUT/nvidia-smi.txt"
    uname -a; echo "cores: $(nproc --all)"; free -g 2>/dev/null | head -2
    $CHECK env --device "$DEVICE" --details "$DETAILS/env.json" --marker "$WORK/cuda_ok"
}

s_wheels() {
    shopt -s nullglob
    local wheels=(.whl/*.whl)
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "no wheels in $REPO/.whl (was the run called with carry [\".whl\"]?)"; return 1
    fi
    echo "${#wheels[@]} wheels, $(du -sh .whl/ | cut -f1): ${wheels[*]##*/}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}" || return 1
    PYTHONPATH="$REPO:$SITE" $CHECK imports --details "$DETAILS/wheels.json"
}

s_cuda_tests() {
    needs_cuda || return
    # tests that must run (not skip) and pass on CUDA; the bench's CUDA test is the bench step.
    EXPECT_RUN="tests/unit/test_data.py::test_to_cuda
        tests/unit/test_optim.py::test_build_optimizer_kwargs_and_device_choices
        tests/functional/test_backends.py::test_device_lists_parse" \
    EXPECT_SKIP="tests/functional/test_backends.py::test_cuda_devices_without_cuda_are_refused
        tests/functional/test_backends.py::test_workers_started_ahead_exit_with_a_command_that_stops_before_training
        tests/functional/test_cli.py::test_cuda_requested_without_cuda" \
    pytest_step cuda_tests \
        tests/unit/test_data.py::test_to_cuda \
        tests/unit/test_optim.py::test_build_optimizer_kwargs_and_device_choices \
        tests/functional/test_backends.py::test_device_lists_parse \
        tests/functional/test_backends.py::test_cuda_devices_without_cuda_are_refused \
        tests/functional/test_backends.py::test_workers_started_ahead_exit_with_a_command_that_stops_before_training \
        tests/functional/test_cli.py::test_cuda_requested_without_cuda
}

s_rng() {
    needs_cuda || return
    EXPECT_RUN="tests/unit/test_rng.py::test_interleaved_runs_draw_as_if_alone_and_leave_the_outer_states_alone
        tests/unit/test_rng.py::test_a_saved_state_resumes_the_same_draws
        tests/unit/test_rng.py::test_identical_runs_interleaved_on_a_gpu_give_identical_histories" \
    pytest_step rng tests/unit/test_rng.py
}

s_compare_local() { needs_cuda || return; compare local --device "$DEVICE"; }
s_compare_processes() { needs_cuda || return; compare processes --backend processes --devices "$DEVICES_ALL"; }
s_compare_two_workers() { needs_cuda || return; compare two_workers --backend processes --devices "$DEVICES_TWO"; }

s_compare_equal() {
    needs_cuda || return
    local runs=()
    for label in local processes two_workers; do
        [ -f "$WORK/$label/results.json" ] && runs+=("$label=$WORK/$label")
    done
    [ ${#runs[@]} -ge 2 ] || { echo "fewer than two compare runs finished: ${runs[*]}"; return 1; }
    $CHECK compare-equal --device "$DEVICE" --out "$OUT/compare.json" --details "$DETAILS/compare_equal.json" "${runs[@]}"
}

s_amp() {
    needs_cuda || return
    # amp-clipping is CIFAR-10 (a download; the GPU machine has no internet): the same runs
    # (fp32, bf16, fp16 + scaler, clipping by norm and value) and CNN on digits, 8x8 images.
    "$PY" -m optlab compare amp-clipping --device "$DEVICE" -s data.dataset=digits -s data.val_size=300 \
        -s "train.epochs=$EPOCHS" -q --no-charts --out "$WORK/amp" || return 1
    $CHECK amp "$WORK/amp" --device "$DEVICE" --details "$DETAILS/amp.json"
}

s_tui_devices() {
    needs_cuda || return
    EXPECT_RUN="tests/tui/test_tui_devices.py::test_devices_in_use_group_runs_by_host_and_device
        tests/tui/test_tui_devices.py::test_meminfo_and_cpu_reading
        tests/tui/test_tui_devices.py::test_monitor_lines
        tests/tui/test_tui_devices.py::test_pane_shows_the_cpu_of_a_local_run" \
    EXPECT_SKIP="tests/tui/test_tui_devices.py::test_cuda_without_nvml_shows_the_placement_and_how_to_get_more" \
    pytest_step tui_devices tests/tui/test_tui_devices.py
}

s_nvml_pane() { needs_cuda || return; $CHECK pane --device "$DEVICE" --work "$WORK/pane" --details "$DETAILS/nvml_pane.json"; }

s_bench() {
    needs_cuda || return
    "$PY" benchmarks/bench.py --quick --device "$DEVICE" --json "$OUT/bench.json" --markdown "$OUT/bench.md" || return 1
    $CHECK bench-check "$OUT/bench.json" --device "$DEVICE" --details "$DETAILS/bench.json"
}

s_fuse() {
    needs_cuda || return
    # quickstart's MLP has dropout, which fuses on the CPU only: without it, sgd/adam/rmsprop runs fuse.
    compare fuse_off --device "$DEVICE" -s model.dropout=0 --fuse off || return 1
    compare fuse_auto --device "$DEVICE" -s model.dropout=0 --fuse auto || return 1
    $CHECK fuse-close --device "$DEVICE" --details "$DETAILS/fuse.json" "$WORK/fuse_off" "$WORK/fuse_auto"
}

s_auto_device_tests() {
    needs_cuda || return
    pytest_step auto_device_tests \
        "tests/functional/test_seeds_and_export.py::test_compare_ranks_configurations_shows_time_to_target_and_says_the_cpu_amp_note_once" \
        tests/functional/test_backends.py::test_processes_backend_matches_local_and_records_placement
}

export -f cuda_here skip needs_cuda pytest_step compare s_env s_wheels s_cuda_tests s_rng s_compare_local \
    s_compare_processes s_compare_two_workers s_compare_equal s_amp s_tui_devices s_nvml_pane s_bench s_fuse \
    s_auto_device_tests

# name:limit in seconds, in the order they run (the most telling first)
PLAN="env:60 wheels:90 cuda_tests:150 rng:120 compare_local:90 compare_processes:90 compare_two_workers:90
compare_equal:30 amp:120 tui_devices:150 nvml_pane:120 bench:240 fuse:150 auto_device_tests:180"

# ---------------------------------------------------------------------------------- driver
summary() {  # write $OUT/summary.json from what has run so far
    local meta
    meta=$(printf '{"device": "%s", "budget_s": %s, "epochs": %s, "dry_run": %s, "steps_selected": "%s", "git": "%s", "started": "%s", "elapsed_s": %s, "benchmarks_with_device_option": "%s", "benchmarks_without_device_option": "%s"}' \
        "$DEVICE" "$BUDGET" "$EPOCHS" "$DRY" "$STEPS" "$GIT" "$STARTED" "$SECONDS" "$WITH_DEVICE" "$WITHOUT_DEVICE")
    $CHECK summary --steps "$WORK/steps.tsv" --details-dir "$DETAILS" --out "$OUT/summary.json" --meta "$meta" \
        --info-steps "$INFO_STEPS" "$@" || echo "summary could not be written (rc $?)"
}

record() {  # name status rc seconds limit reason
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$(printf '%s' "$6" | tr '\t\n' '  ' | cut -c1-300)" \
        >>"$WORK/steps.tsv"
}

selected() { [ "$STEPS" = all ] || [[ " $STEPS " == *" $1 "* ]]; }

run_step() {  # name limit
    local name=$1 limit=$2 left=$((BUDGET - SECONDS))
    if ! selected "$name"; then record "$name" not-selected "" "" "$limit" "not in GPU_CHECK_STEPS"; return; fi
    if [ "$left" -lt 20 ]; then
        record "$name" skipped "" "" "$limit" "out of time: ${left}s of GPU_CHECK_BUDGET_S=$BUDGET left"
        echo "=== $name: skipped, out of time"; return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo; echo "=== [$(date -u +%H:%M:%S)] step $name (limit ${limit}s, ${left}s of the budget left)"
    if [ "$DRY" = 1 ]; then
        declare -f "s_$name" | sed 's/^/    /'
        record "$name" dry-run "" 0 "$limit" "GPU_CHECK_DRY_RUN=1"; return
    fi
    rm -f "$WORK/reason"
    local t0 rc status reason=""
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" bash -o pipefail -c "s_$name" 2>&1 | tee "$WORK/$name.out"
    rc=${PIPESTATUS[0]}
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    case $rc in
        0) status=passed ;;
        77) status=skipped; reason=$(cat "$WORK/reason" 2>/dev/null) ;;
        124|137) status=timeout; reason="killed after ${limit}s" ;;
        *) status=failed; reason=$(grep -v '^\s*$' "$WORK/$name.out" | tail -1 | cut -c1-200) ;;
    esac
    record "$name" "$status" "$rc" "$secs" "$limit" "$reason"
    echo "=== step $name: $status (rc $rc) in ${secs}s ${reason}"
    summary --partial --quiet
}

main() {
    echo "optlab GPU check: device $DEVICE, budget ${BUDGET}s, epochs $EPOCHS, steps '$STEPS', out $OUT, work $WORK"
    echo "repo $REPO at $GIT; python: $(command -v "$PY")"
    for entry in $PLAN; do
        run_step "${entry%%:*}" "${entry##*:}"
        # every later step sees the carried wheels (and this checkout's optlab) first
        [ "${entry%%:*}" = wheels ] && export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
    done
    echo; echo "=== done in ${SECONDS}s; files in $OUT:"; ls -la "$OUT"
    summary
    "$PY" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["overall"] not in ("passed", "dry-run"))' "$OUT/summary.json"
}

# benchmarks/*.py that take --device (bench.py alone when this was written); the rest say so
WITH_DEVICE=$(grep -l -- 'add_argument("--device"' benchmarks/*.py | grep -v gpu_check | xargs -n1 basename 2>/dev/null | tr '\n' ' ')
WITHOUT_DEVICE=$(grep -L -- 'add_argument("--device"' benchmarks/*.py | grep -v gpu_check | xargs grep -l '__main__' 2>/dev/null \
    | xargs -n1 basename 2>/dev/null | tr '\n' ' ')
GIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "unknown (no .git)")
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
: >"$WORK/steps.tsv"
main 2>&1 | tee "$OUT/gpu_check.log"
