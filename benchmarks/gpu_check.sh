#!/usr/bin/env bash
# GPU check of rhoflow, from the repository root, ≤ 8 minutes on one GPU:
#
#   bash benchmarks/gpu_check.sh [--cpu-only] [--out DIR] [--epochs N] [--molecules N]
#
# (a) SchNet on micro_qm9's gap: CUDA bf16-mixed and 32-true beside the CPU (32-true): train
#     molecules per second and validation MAE (meV);
# (b) the pyscf engine at B3LYP/6-31G* on three PCQM4Mv2 molecules with density.pyscf.device
#     cuda (gpu4pyscf, installed with pip when missing) against cpu: ΔE (µHartree), Δgap,
#     max |Δρ| on the grid, seconds per molecule.
# Results: gpu_check.json and gpu_check.md (and each step's JSON) in --out, default $OUT when
# set, else results/gpu_check. Without CUDA, or with --cpu-only, every CUDA part is skipped and
# the report says why; --cpu-only also defaults to 2 epochs and one PCQM4Mv2 molecule.
#
# Each step runs with the first Python that can run it, of $PYTHON, .venv/bin/python and
# python3 (PYTHONPATH=src): the data are prepared where RDKit is, training uses a torch that
# sees CUDA, densities a Python with pyscf. Prepared data (micro_qm9 conformers, ~75 core-s)
# are kept in results/gpu_check/work ($GPU_CHECK_WORK) and reused: on a GPU machine without
# RDKit, prepare them elsewhere with `.venv/bin/python benchmarks/gpu_check.py prepare --work
# results/gpu_check/work` and bring that folder along. gpu4pyscf comes from a wheel folder
# .whl/ when there is one, else from PyPI. Step time limits (s): GPU_CHECK_PREPARE_S (120),
# GPU_CHECK_PIP_S (90), GPU_CHECK_TRAIN_S (150), GPU_CHECK_PYSCF_S (120).
set -uo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-results/gpu_check}
work=${GPU_CHECK_WORK:-results/gpu_check/work}
cpu_only=""
epochs=""
molecules=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-only) cpu_only=--cpu-only ;;
        --out) out=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --molecules) molecules=$2; shift ;;
        *) echo "usage: $0 [--cpu-only] [--out DIR] [--epochs N] [--molecules N]" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$cpu_only" ]; then
    epochs=${epochs:-2}
    molecules=${molecules:-1}
fi
epochs=${epochs:-3}
molecules=${molecules:-3}
mkdir -p "$out"
notes="$out/notes.txt"
: >"$notes"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS

note() {
    echo "gpu_check: $*"
    echo "$*" >>"$notes"
}

pythons=()
[ -n "${PYTHON:-}" ] && pythons+=("$PYTHON")
[ -x .venv/bin/python ] && pythons+=(.venv/bin/python)
command -v python3 >/dev/null && pythons+=("$(command -v python3)")

first_python() { # the first Python for which the code $1 runs without error
    local py
    for py in "${pythons[@]}"; do
        if "$py" -c "$1" >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# run LIMIT_S STEP PYTHON ARGS...: one step of gpu_check.py, noted when it fails
run() {
    local limit=$1 step=$2 py=$3
    shift 3
    echo "gpu_check: $step with $py"
    timeout "$limit" "$py" benchmarks/gpu_check.py "$step" "$@"
    local rc=$?
    if [ "$rc" = 124 ]; then
        note "step $step stopped at its ${limit} s limit: what it finished is reported"
    elif [ "$rc" != 0 ]; then
        note "step $step failed (exit $rc): see the log above"
    fi
}

py_data=$(first_python "import rdkit, jsonschema, rhoflow.shards, rhoflow.conformers") || py_data=""
py_torch=""
if [ -z "$cpu_only" ]; then
    py_torch=$(first_python "import torch, lightning, torch_geometric
assert torch.cuda.is_available()") || py_torch=""
fi
[ -n "$py_torch" ] || py_torch=$(first_python "import torch, lightning, torch_geometric") || py_torch=""
py_scf=$(first_python "import pyscf, jsonschema, rhoflow.density") || py_scf=""
gpu=""
if [ -z "$cpu_only" ] && nvidia-smi -L >/dev/null 2>&1; then
    gpu=$(nvidia-smi -L | head -n 1)
    note "GPU: $gpu"
elif [ -z "$cpu_only" ]; then
    note "no NVIDIA GPU (nvidia-smi): the CUDA parts are skipped"
fi

# gpu4pyscf for the pyscf engine's device cuda, matched to CUDA's major version (CuPy's when
# one is installed); into the Python with pyscf, else into python3 with pyscf and jsonschema
# at the versions of requirements.txt
if [ -n "$gpu" ]; then
    target=$py_scf
    extra=()
    if [ -z "$target" ] && command -v python3 >/dev/null; then
        target=$(command -v python3)
        mapfile -t extra < <(grep -E "^(pyscf|jsonschema)==" requirements.txt)
    fi
    if [ -n "$target" ] && ! "$target" -c "import gpu4pyscf" >/dev/null 2>&1; then
        major=$("$target" -c "import cupy; print(cupy.cuda.runtime.runtimeGetVersion() // 1000)" \
            2>/dev/null) || major=12
        pin=$("$target" -c "import pyscf; print('pyscf==' + pyscf.__version__)" 2>/dev/null) ||
            pin=$(grep -E "^pyscf==" requirements.txt)
        wheels=()
        [ -d .whl ] && wheels=(--find-links .whl)
        echo "gpu_check: pip install gpu4pyscf-cuda${major}x into $target ($pin kept)"
        if ! PIP_BREAK_SYSTEM_PACKAGES=1 timeout "${GPU_CHECK_PIP_S:-90}" "$target" -m pip install \
            --quiet --disable-pip-version-check --retries 1 --timeout 15 "${wheels[@]}" \
            "gpu4pyscf-cuda${major}x" "$pin" "${extra[@]}"; then
            note "could not install gpu4pyscf-cuda${major}x with pip (no route to PyPI and no .whl/?): pyscf on CUDA is skipped"
        fi
        [ -n "$py_scf" ] || py_scf=$(first_python "import pyscf, jsonschema, rhoflow.density") || py_scf=""
    fi
fi

if [ -f "$work/prepared.json" ]; then
    echo "gpu_check: reusing the prepared data in $work"
elif [ -n "$py_data" ]; then
    run "${GPU_CHECK_PREPARE_S:-120}" prepare "$py_data" --work "$work"
else
    note "no Python with RDKit and rhoflow's dependencies here: prepare $work elsewhere (see the head of benchmarks/gpu_check.sh)"
fi

if [ ! -f "$work/prepared.json" ]; then
    note "no prepared data: nothing to train or compute"
else
    if [ -n "$py_torch" ]; then
        run "${GPU_CHECK_TRAIN_S:-150}" train "$py_torch" --work "$work" --out "$out" \
            --epochs "$epochs" $cpu_only
    else
        note "no Python with torch, lightning and torch_geometric: training skipped"
    fi
    if [ -n "$py_scf" ]; then
        run "${GPU_CHECK_PYSCF_S:-120}" pyscf "$py_scf" --work "$work" --out "$out" \
            --molecules "$molecules" $cpu_only
    else
        note "no Python with pyscf and rhoflow's dependencies: the pyscf comparison is skipped"
    fi
fi

note "total $((SECONDS - start)) s"
"${pythons[0]}" benchmarks/gpu_check.py report --out "$out" --notes "$notes"
