#!/usr/bin/env python3
"""classloss against PyTorch on the cells of `examples/perf.rs`, in ns per logit.

Runs `cargo run --release --example perf -- --json` (with RAYON_NUM_THREADS
set to --threads), then times every cell it reports in PyTorch with
`torch.set_num_threads(--threads)`: the loss and its backward, through
autograd, the gradient freshly allocated each step as after
`zero_grad(set_to_none=True)`; and the copy floor `out.copy_(x)`. Prints one
table: classloss fused (`forward_backward_into` a reused buffer) and
unfused (`forward` + `backward`), PyTorch, and the speed-up
PyTorch / classloss-fused (above 1: classloss is faster).

The PyTorch side of each loss:
  cross_entropy     F.cross_entropy
  cross_entropy_spatial
                    F.cross_entropy on (N, C, H, W) logits, (N, H, W) labels
  label_smoothing   F.cross_entropy(label_smoothing=0.1)
  softmax_focal     -(1 - p_y)^2 log p_y from F.log_softmax (gamma 2, alpha 1)
  poly1, gce        from F.log_softmax (epsilon 1; q 0.7)
  arcface_cosines   insightface's margin on the gathered target cosine
                    (s 64, m 0.5, with its fallback), scattered into s * cos,
                    then F.cross_entropy
  bce_with_logits   F.binary_cross_entropy_with_logits
  sigmoid_focal     torchvision.ops.sigmoid_focal_loss (alpha 0.25, gamma 2),
                    or an inline copy of its formula without torchvision
Inputs have the distributions of `examples/perf/inputs.rs` (logits uniform
in [-4, 4), cosines in [-0.99, 0.99), labels uniform in 0..C, binary
targets 1 with probability 0.1), drawn by torch with a fixed seed. A
spatial cell's JSON has "spatial": [H, W] beside "n" and "c"; its shape
is N x C x H x W, and "per element" is per logit there too.

Both sides run --rounds times (default 3), alternating (classloss, then
PyTorch, then again), and each cell keeps each side's fastest round:
interference from other tenants of a shared machine only ever adds time,
and on a virtual machine it moved single runs by up to 2x (the same
binary, seconds apart). The table's spread column is each side's slowest
round over its fastest.

Then the two sides run side by side, cell by cell: --slices (default 40)
pairs of slices of about 25 ms each, classloss's (the perf example's
--serve mode, one long-lived process) and PyTorch's alternating, in
turns. A virtual machine's own speed moved 1.5x between seconds (a loop
of dependent additions, nothing else running), more than a whole round
of either side takes, so the rounds' table can compare one side's fast
second with the other's slow one; a pair's two slices are a few
milliseconds apart. The second table gives each side's fastest slice,
their ratio, and the median of the pairs' own ratios.

At the end it says how many cores other processes kept busy during each
side's run (the busiest round): above 0.1 the numbers are disturbed (run
on a quiet machine).

Needs PyTorch (CPU build: `pip install torch --index-url
https://download.pytorch.org/whl/cpu`); never used by the tests or CI.

  python3 benches/compare_pytorch.py --threads 1
  python3 benches/compare_pytorch.py --threads 2 --filter cross_entropy
  python3 benches/compare_pytorch.py --threads 1 --filter spatial
  python3 benches/compare_pytorch.py --quick          # a smoke run
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads and RAYON_NUM_THREADS (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="short time budget on both sides, rough numbers")
    p.add_argument("--filter",
                   help="only cells whose 'loss dtype NxC' (or 'NxCxHxW') contains this")
    p.add_argument("--features", help="cargo features for the perf example (e.g. rayon)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds of both sides; each side's fastest is kept (default 3)")
    p.add_argument("--slices", type=int, default=40,
                   help="pairs of alternating ~25 ms slices per cell, side by side (default 40; 0: none)")
    p.add_argument("--classloss-json", type=Path,
                   help="read the perf example's --json output from this file instead of running it")
    return p.parse_args()


def run_classloss(args):
    """The perf example's results (a dict, as its --json prints)."""
    if args.classloss_json:
        return json.loads(args.classloss_json.read_text())
    cmd = ["cargo", "run", "--release", "--example", "perf"]
    if args.features:
        cmd += ["--features", args.features]
    cmd += ["--", "--json"]
    if args.quick:
        cmd.append("--quick")
    if args.filter:
        cmd += ["--filter", args.filter]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    print(f"$ RAYON_NUM_THREADS={args.threads} {' '.join(cmd)}", file=sys.stderr, flush=True)
    # Progress (stderr) goes to the terminal; the JSON (stdout) is kept.
    out = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, check=True)
    return json.loads(out.stdout)


def extreme(pick, values):
    """`pick` (min or max) of the rounds' values that were taken (None if none was)."""
    values = [v for v in values if v is not None]
    return pick(values) if values else None


def cpu_snapshot():
    """(all CPUs' ticks, their idle ticks, this process's ticks), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    return sum(cpu), cpu[3] + cpu[4], process_ticks("self")


def process_ticks(pid):
    """The CPU ticks process `pid` ("self": this one) has used (0 off Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def others_since(snap, cores, own=0):
    """Cores that other processes kept busy on average since `snap` (as
    examples/perf/load.rs), not counting `own` ticks of this run's child."""
    now = cpu_snapshot()
    if snap is None or now is None or now[0] - snap[0] < 10 * cores:
        return None
    total = now[0] - snap[0]
    others = max(0, total - (now[1] - snap[1]) - (now[2] - snap[2]) - own)
    return others / (total / cores)


def seconds_per_call(step, iters):
    """The time per call of `iters` calls of `step`, in seconds."""
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t0) / iters


def ns_per_call(step, target_s, batches, min_batches):
    """Median time per call of `step` over batches, as examples/perf/measure.rs."""
    step()  # warm-up
    per_batch = target_s / batches
    iters = 1
    while True:
        per_call = seconds_per_call(step, iters)
        if per_call * iters * 10 >= per_batch or iters >= 1 << 30:
            break
        iters *= 2
    samples = []
    if per_call >= per_batch:
        samples.append(per_call)
        n_batches = max(min_batches, min(batches, int(target_s / per_call)))
        iters = 1
    else:
        n_batches = batches
        iters = max(1, round(per_batch / per_call))
    while len(samples) < n_batches:
        samples.append(seconds_per_call(step, iters))
    return statistics.median(samples) * 1e9


def torch_cells(torch):
    """loss name -> (input kind, function of (x, target) giving a scalar loss)."""
    F = torch.nn.functional
    try:
        from torchvision.ops import sigmoid_focal_loss
        focal_source = "torchvision.ops.sigmoid_focal_loss"
    except ImportError:
        focal_source = "inline copy of torchvision's sigmoid_focal_loss"

        def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="mean"):
            p = torch.sigmoid(inputs)
            ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
            p_t = p * targets + (1 - p) * (1 - targets)
            loss = ce_loss * ((1 - p_t) ** gamma)
            if alpha >= 0:
                alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
                loss = alpha_t * loss
            return loss.mean() if reduction == "mean" else loss.sum()

    def log_p_target(x, y):
        return F.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)

    def softmax_focal(x, y, gamma=2.0):
        lp = log_p_target(x, y)
        return (-((1 - lp.exp()) ** gamma) * lp).mean()

    def poly1(x, y, epsilon=1.0):
        lp = log_p_target(x, y)
        return (-lp + epsilon * (1 - lp.exp())).mean()

    def gce(x, y, q=0.7):
        return ((1 - (q * log_p_target(x, y)).exp()) / q).mean()

    s, m = 64.0, 0.5
    cos_m, sin_m = math.cos(m), math.sin(m)
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def arcface_cosines(cos, y):
        idx = y[:, None]
        ct = cos.gather(1, idx)
        st = (1 - ct * ct).clamp_min(0).sqrt()
        phi = torch.where(ct > th, ct * cos_m - st * sin_m, ct - mm)
        logits = (cos * s).scatter(1, idx, phi * s)
        return F.cross_entropy(logits, y)

    cells = {
        "cross_entropy": ("labels", lambda x, y: F.cross_entropy(x, y)),
        "cross_entropy_spatial": ("labels", lambda x, y: F.cross_entropy(x, y)),
        "label_smoothing": ("labels", lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1)),
        "softmax_focal": ("labels", softmax_focal),
        "poly1": ("labels", poly1),
        "gce": ("labels", gce),
        "arcface_cosines": ("cosines", arcface_cosines),
        "bce_with_logits": ("binary", F.binary_cross_entropy_with_logits),
        "sigmoid_focal": ("binary", lambda x, t: sigmoid_focal_loss(x, t, reduction="mean")),
    }
    return cells, focal_source


def dims(r):
    """A result's input shape: (n, c), or (n, c, h, w) for a spatial cell."""
    return (r["n"], r["c"], *r.get("spatial", ()))


def label_of(r):
    """A result's cell as the perf example names it: "cross_entropy f32 256x1000"."""
    return f"{r['loss']} {r['dtype']} {shape_str(dims(r))}"


def shape_str(shape):
    """(8, 21, 128, 128) -> "8x21x128x128", as the perf example prints it."""
    return "x".join(str(d) for d in shape)


def make_inputs(torch, kind, shape, dtype):
    """Inputs of `shape` (N, C, ..) and targets: labels (N, ..) or binary, as the logits."""
    g = torch.Generator().manual_seed(0)
    if kind == "cosines":
        x = torch.rand(*shape, generator=g, dtype=dtype) * 1.98 - 0.99
    else:
        x = torch.rand(*shape, generator=g, dtype=dtype) * 8 - 4
    if kind == "binary":
        t = (torch.rand(*shape, generator=g) < 0.1).to(dtype)
    else:
        t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return x, t


def torch_step(torch, cells, r, dtypes):
    """PyTorch's loss-and-backward step for result `r`, or None without such a loss."""
    if r["loss"] not in cells:
        return None
    kind, fn = cells[r["loss"]]
    x, t = make_inputs(torch, kind, dims(r), dtypes[r["dtype"]])
    x.requires_grad_(True)

    def step():
        x.grad = None
        fn(x, t).backward()

    return step


SLICE_S = 0.025
# The softmax-family losses held to cross-entropy's time of the same shape.
FAMILY = ("label_smoothing", "softmax_focal", "poly1", "gce")


def alternate(slices, a, b, pause):
    """`slices` pairs (a(), b()), the first of each pair taken in turns, each
    slice after `pause` seconds idle (for the other side's threads, which
    spin a while after their work, to sleep)."""
    def take(f):
        if pause:
            time.sleep(pause)
        return f()

    pairs = []
    for k in range(slices):
        if k % 2 == 0:
            x = take(a)
            y = take(b)
        else:
            y = take(b)
            x = take(a)
        pairs.append((x, y))
    return pairs


def paired_slices(args, torch, cells, results, dtypes):
    """Per result with a PyTorch loss, a dict: classloss's fastest slice
    ("ours") and PyTorch's ("theirs") in ns per logit, the median of the
    pairs' ratios PyTorch / classloss ("median"), and for a softmax-family
    loss the median ratio of its slices to cross-entropy's ("vs_ce"); the
    two sides' slices alternate, a pair at a time, in turns. Also the cores
    other processes kept busy meanwhile."""
    # The example's own process (not `cargo run`'s), whose CPU time is
    # told apart from other processes'.
    cmd = ["cargo", "build", "--release", "--example", "perf", "--message-format=json"]
    if args.features:
        cmd += ["--features", args.features]
    built = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    exe = [m["executable"] for m in map(json.loads, built.stdout.splitlines())
           if m.get("reason") == "compiler-artifact" and m.get("executable")][-1]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    server = subprocess.Popen([exe, "--serve"], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ours(label, iters):
        server.stdin.write(f"{label} {iters}\n")
        server.stdin.flush()
        line = server.stdout.readline()
        if not line:
            sys.exit(f"the perf example's --serve mode stopped at {label!r}")
        return float(line)

    def theirs(step, iters, elements):
        return seconds_per_call(step, iters) / elements * 1e9

    # With more than one thread, 5 ms between slices: the idle threads of
    # OpenMP and of rayon spin a while after their work.
    pause = 0.005 if args.threads > 1 else 0.0
    out, start, ticks = [], None, 0
    for i, r in enumerate(results):
        step = torch_step(torch, cells, r, dtypes)
        if step is None:
            out.append(None)
            continue
        shape = dims(r)
        elements = math.prod(shape)
        label = label_of(r)

        def count(ns_per_logit):
            """Calls in a slice, from one call's ns per logit."""
            return max(1, round(SLICE_S / (ns_per_logit * elements * 1e-9)))

        print(f"[{i + 1}/{len(results)}] side by side: {label}", file=sys.stderr, flush=True)
        # Warm-up (the first call prepares classloss's cell), then each
        # side's count for a slice from a second call.
        ours(label, 1)
        step()
        if start is None:
            start, ticks = cpu_snapshot(), process_ticks(server.pid)
        n_ours, n_theirs = count(ours(label, 1)), count(theirs(step, 1, elements))
        pairs = alternate(args.slices, lambda: ours(label, n_ours),
                          lambda: theirs(step, n_theirs, elements), pause)
        cell = {"ours": min(a for a, _ in pairs), "theirs": min(b for _, b in pairs),
                "median": statistics.median(b / a for a, b in pairs)}
        # A softmax-family loss against cross-entropy of its shape, the same way.
        ce = label_of(dict(r, loss="cross_entropy"))
        if r["loss"] in FAMILY and any(label_of(q) == ce for q in results):
            ours(ce, 1)
            n_ce = count(ours(ce, 1))
            pairs = alternate(args.slices, lambda: ours(label, n_ours), lambda: ours(ce, n_ce),
                              pause)
            cell["vs_ce"] = statistics.median(a / b for a, b in pairs)
        out.append(cell)
    ticks = process_ticks(server.pid) - ticks
    busy = others_since(start, os.cpu_count() or 1, ticks)
    server.stdin.close()
    server.wait()
    return out, busy


def torch_round(torch, cells, results, budget, dtypes, floors):
    """PyTorch's ns per logit for every classloss result (None where it has no
    such loss), in order; `floors` keeps each shape's fastest copy floor."""
    out, seen = [], set()
    for i, r in enumerate(results):
        dtype, shape = r["dtype"], dims(r)
        elements = math.prod(shape)
        print(f"[{i + 1}/{len(results)}] torch {label_of(r)}",
              file=sys.stderr, flush=True)
        step = torch_step(torch, cells, r, dtypes)
        if step is None:
            out.append(None)
            continue
        out.append(ns_per_call(step, *budget) / elements)
        key = (dtype, shape)
        if key not in seen:
            seen.add(key)
            x = torch.rand(*shape, dtype=dtypes[dtype])
            dst = torch.empty_like(x)
            floor = ns_per_call(lambda: dst.copy_(x), *budget) / elements
            floors[key] = min(floors.get(key, floor), floor)
    return out


def main():
    args = parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch.py needs PyTorch: pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu")

    budget = (0.02, 3, 1) if args.quick else (0.3, 5, 3)
    dtypes = {"f32": torch.float32, "f64": torch.float64}
    runs, torch_runs, floors, busy_runs = [], [], {}, []
    for k in range(args.rounds):
        if k > 0:
            # Torch's idle threads spin a while after their last work.
            time.sleep(1.0)
        print(f"round {k + 1} of {args.rounds}", file=sys.stderr, flush=True)
        runs.append(run_classloss(args))  # first: torch's threads are not yet started
        if k == 0:
            torch.set_num_threads(args.threads)
            cells, focal_source = torch_cells(torch)
        start = cpu_snapshot()
        torch_runs.append(torch_round(torch, cells, runs[-1]["results"], budget, dtypes, floors))
        busy_runs.append(others_since(start, runs[-1]["cores"]))

    side_by_side, busy_pairs = None, None
    if args.slices > 0:
        time.sleep(1.0)
        side_by_side, busy_pairs = paired_slices(args, torch, cells, runs[0]["results"], dtypes)

    # Each side's fastest round: interference only ever adds time.
    results = runs[0]["results"]
    rows = []
    for i, r in enumerate(results):
        mine = [run["results"][i] for run in runs]
        best = dict(r)
        for key in ("fused_ns_per_elem", "unfused_ns_per_elem", "copy_ns_per_elem"):
            best[key] = min(m[key] for m in mine)
        best["fused_spread"] = max(m["fused_ns_per_elem"] for m in mine) / best["fused_ns_per_elem"]
        theirs = [tr[i] for tr in torch_runs]
        rows.append((best, extreme(min, theirs),
                     None if theirs[0] is None else max(theirs) / min(theirs)))
    classloss = runs[0]
    ours_floor = {}
    for r, _, _ in rows:
        ours_floor.setdefault((r["dtype"], dims(r)), r["copy_ns_per_elem"])
    floors = {key: (ours_floor[key], theirs) for key, theirs in floors.items()}

    cores = classloss["cores"]
    busy = {"classloss": extreme(max, [run.get("other_busy_cores") for run in runs]),
            "PyTorch": extreme(max, busy_runs)}
    if side_by_side is not None:
        busy["side-by-side"] = busy_pairs

    print(f"classloss vs PyTorch: ns per element (per logit), lower is better; "
          f"threads {args.threads}")
    print(f"machine: {classloss['machine']} ({classloss['cores']} logical CPUs), "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"torch {torch.__version__} (cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)")
    print(f"classloss: RAYON_NUM_THREADS={classloss['rayon_num_threads']}; "
          f"sigmoid_focal from {focal_source}")
    print(f"timing: median of batches, ~{budget[0]} s per measurement"
          + (" (--quick: rough numbers)" if args.quick else "")
          + f"; {args.rounds} alternating rounds (classloss, PyTorch), each side's fastest"
          + " round kept; spread = slowest / fastest round")
    print("speed-up = pytorch / classloss fused (above 1: classloss is faster)")
    print()
    header = (f"{'shape':>12} {'dtype':<5} {'loss':<21} {'classloss':>10} {'unfused':>9} "
              f"{'pytorch':>9} {'speed-up':>9} {'spread':>13}")
    print(header)
    for r, torch_ns, torch_spread in rows:
        shape = shape_str(dims(r))
        ours = r["fused_ns_per_elem"]
        theirs = "-" if torch_ns is None else f"{torch_ns:9.3f}"
        ratio = "-" if torch_ns is None else f"{torch_ns / ours:9.2f}"
        spread = f"{r['fused_spread']:.2f}" + ("" if torch_spread is None else f" / {torch_spread:.2f}")
        print(f"{shape:>12} {r['dtype']:<5} {r['loss']:<21} {ours:10.3f} "
              f"{r['unfused_ns_per_elem']:9.3f} {theirs:>9} {ratio:>9} {spread:>13}")
    if side_by_side is not None:
        print()
        print(f"side by side: {args.slices} pairs of ~{SLICE_S * 1e3:.0f} ms slices a cell, "
              "classloss fused and PyTorch alternating; each side's fastest slice, "
              "their ratio, and the median of the pairs' ratios; vs CE: the median ratio "
              "of the loss's slices to cross-entropy's of the same shape, alternating")
        print(f"{'shape':>12} {'dtype':<5} {'loss':<21} {'classloss':>10} {'pytorch':>9} "
              f"{'speed-up':>9} {'pair-median':>12} {'vs CE':>6}")
        for (r, _, _), cell in zip(rows, side_by_side):
            if cell is None:
                continue
            ours, theirs = cell["ours"], cell["theirs"]
            vs_ce = f"{cell['vs_ce']:6.2f}" if "vs_ce" in cell else f"{'-':>6}"
            print(f"{shape_str(dims(r)):>12} {r['dtype']:<5} {r['loss']:<21} {ours:10.3f} "
                  f"{theirs:9.3f} {theirs / ours:9.2f} {cell['median']:12.2f} {vs_ce}")
    print()
    print("copy floor (read the input, write a same-sized buffer): classloss one thread's "
          "memcpy, torch out.copy_(x) on its threads")
    print(f"{'shape':>12} {'dtype':<5} {'classloss':>10} {'pytorch':>9}")
    for (dtype, shape), (ours, theirs) in floors.items():
        print(f"{shape_str(shape):>12} {dtype:<5} {ours:10.3f} {theirs:9.3f}")
    print()
    print(f"other processes kept busy (of {cores} cores): "
          + ", ".join(f"{k} run {'?' if v is None else f'{v:.2f}'}" for k, v in busy.items()))
    if any(v is not None and v > 0.1 for v in busy.values()):
        print("warning: the machine was not quiet; these numbers are disturbed")


if __name__ == "__main__":
    main()
