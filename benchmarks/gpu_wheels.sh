#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu_wheels.txt (Python 3.12, manylinux x86_64, no
# dependencies resolved: the list names every one) into the repo root's ignored folder .whl,
# for benchmarks/gpu_check.sh on the GPU machine. Usage: bash benchmarks/gpu_wheels.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
"${1:-python3}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
ls .whl/*.whl | sed 's|.*/||; s/-[0-9].*//' | sort | uniq -d | sed 's/^/two versions of /' | grep . >&2 && exit 1
du -sh .whl/
