#!/usr/bin/env bash
# Builds .gpu-bundle/site-cpXY.tar.xz: Ray and the Python packages it needs that the GPU machine
# lacks, installed for that machine's Python (3.12) into one folder and packed, so that
# jobs/gpu_check.py runs there under Ray (docs/gpu.md). Ray's wheel (79 MB; 201 MB unpacked) does not
# fit what travels to that machine (64 MiB in all); without ray/jars (Java) and RLlib, neither used
# here, the tree packs to about 30 MiB. The machine already has torch (CUDA), numpy, pandas, pyarrow,
# fsspec, grpcio, protobuf, aiohttp, click, msgpack, filelock, pyyaml, requests, psutil and rich
# (/work/.library/device/KINDS.md); textcnn itself travels with the checkout (PYTHONPATH=.).
# .gpu-bundle/ is ignored through .git/info/exclude: wheels are never committed.
#
#   benchmarks/gpu_bundle.sh              # for the GPU machine (cp312)
#   PY=3.11 benchmarks/gpu_bundle.sh      # the same set for this machine's Python, to try it here
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-3.12}
PIP=${PIP:-python3 -m pip}
OUT=.gpu-bundle
TAG=cp${PY/./}
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")" "$OUT"
grep -qxF "/$OUT/" "$EXCLUDE" 2>/dev/null || echo "/$OUT/" >>"$EXCLUDE"

# Ray's own requirements the machine lacks (jsonschema: runtime-env schemas at ray.init; pydantic:
# Ray Train's state schema), at the versions the project's tests ran with.
PACKAGES=(
  ray==2.60.0
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing_extensions==4.16.0
)
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
$PIP install --quiet --no-deps --no-compile --only-binary=:all: --target "$SITE/site" \
  --python-version "$PY" --implementation cp --abi "$TAG" --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  "${PACKAGES[@]}"
rm -rf "$SITE/site/ray/jars" "$SITE/site/ray/rllib" "$SITE/site/bin"
find "$SITE/site" -name __pycache__ -prune -exec rm -rf {} +
tar -C "$SITE/site" -cf - . | xz -T0 -6 >"$OUT/site-$TAG.tar.xz"
du -h "$OUT/site-$TAG.tar.xz"
