#!/usr/bin/env bash
# The class-sharded head's step time on 1 process (1 and 2 threads) and on
# 2 processes of 1 thread, at V classes (default 4,000,000: 16.4 GB of f32
# weight and gradient, the largest that fits a 23 GB machine), D = 512,
# N = 256 tokens, 3 calls each (README, "Class-sharded heads").
# Needs the `mpi` feature's packages (libopenmpi-dev openmpi-bin libclang-dev).
# Run from the repository root: bash benches/sharded_head_scale.sh
set -euo pipefail
V="${V:-4000000}"
cargo build --release --features mpi --example sharded_head
bin="${CARGO_TARGET_DIR:-target}/release/examples/sharded_head"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for config in "1 1" "1 2" "2 1"; do
  set -- $config
  echo "== $1 process(es) of $2 thread(s), V = $V"
  RAYON_NUM_THREADS=$2 mpirun --bind-to none -x RAYON_NUM_THREADS -np "$1" "$bin" \
    --classes "$V" --dim 512 --tokens 256 --steps 3 --no-reference
done
