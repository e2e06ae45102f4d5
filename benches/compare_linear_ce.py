#!/usr/bin/env python3
"""classloss's fused linear + cross-entropy head against PyTorch: time and peak memory.

Part 1, the head. One training step's loss and gradients for the hidden
states, the weight and the bias of a linear classifier, f32, mean over the
tokens, on three paths:
  ref        F.cross_entropy(F.linear(h, W, b), y), then .backward()
             (the (N, V) logits and their gradient are materialized)
  chunked    F.linear_cross_entropy(h, W, y, linear_bias=b,
             options=torch.nn.LinearCrossEntropyOptions()), then .backward()
             (PyTorch's chunked path, default options; skipped, and said so,
             when the installed torch lacks it)
  classloss  LinearCrossEntropy::<f32>::new() (default chunk,
             chunk_rows_for(V) tokens), forward_backward_into one gradient
             buffer allocated once by head.zeros_grad(input)
             (the binary benches/linear_head.rs)
Inputs: h (N, D) uniform in [-1, 1), W (V, D) uniform in [-0.05, 0.05),
b (V) zeros, labels y (N) int64 uniform in 0..V; torch's generator on the
PyTorch side, an xorshift on classloss's (same distributions, not the same
numbers). All generated in place, without temporaries.

Every (path, shape, threads) runs in a fresh process, so each peak is its
own; a round runs ref, chunked, classloss in turn, and rounds repeat
(--rounds), so noise from the machine falls on all paths alike. In each
process: build the inputs, one warm-up step, then glibc's malloc_trim(0)
(memory the warm-up freed but malloc kept is not counted as live), the
baseline VmRSS, VmHWM reset (`5` into /proc/self/clear_refs), then --steps
timed steps. A PyTorch step sets h.grad, W.grad and b.grad to None (as
zero_grad(set_to_none=True)), computes the loss and calls .backward(); a
classloss step is one forward_backward_into the same buffer.
  time       the median of the process's step wall times
  peak MiB   VmHWM after the steps minus the baseline VmRSS: memory a step
             needs beyond the inputs, the gradient buffers of h, W and b
             (classloss's from zeros_grad, PyTorch's .grad tensors from the
             warm-up step: both resident in the baseline), the interpreter
             and the libraries' code. A PyTorch step frees its old .grad
             tensors before it allocates new ones, so they are not counted
             twice. If the kernel refuses the VmHWM reset (marked *), the
             peak is the process's whole life instead.
The table gives the median over rounds of both, and classloss's time over
the faster PyTorch path's (below 1: classloss is faster).

Part 2, the matrix products. The head's three products per chunk of T
tokens, T = LinearCrossEntropy::<f32>::new().chunk_rows_for(V) (at most N):
  logits    Z = H_c W^T      (T x D) x (D x V), W^T a transposed view
  d_hidden  dH_c = G W       (T x V) x (V x D)
  d_weight  dW += G^T H_c    (V x T) x (T x D), G^T a transposed view, accumulated
in GFLOP/s (2 T D V flops each), median over --reps calls after one
warm-up, for the gemm crate 0.19 (called as src/numerics/matmul.rs calls it:
Parallelism::None on 1 thread, Parallelism::Rayon(n) on n), ndarray's
general_mat_mul (matrixmultiply with its threading feature,
MATMUL_NUM_THREADS), both in benches/matmul.rs, and torch.mm on the same
layouts (torch.mm(out=) for Z and dH_c, dW.addmm_(G.t(), H_c) for dW), in
alternating fresh processes per round; the median over rounds.

Threads: RAYON_NUM_THREADS, MATMUL_NUM_THREADS and OMP_NUM_THREADS for
every process, torch.set_num_threads on the PyTorch side. At the end it
says how many cores other processes kept busy during each cell (the CPU
time of this script and its children is subtracted): above 0.1 the numbers
are disturbed (run on a quiet machine).

Full-size runs take long (the ref path at 4096x512x128256 is over 1.5 TFLOP
a step and several GiB of logits): run them on an otherwise idle machine.
Needs PyTorch (CPU build: `pip install torch --index-url
https://download.pytorch.org/whl/cpu`) and cargo; Linux for the memory
figures (/proc); never used by the tests or CI.

  python3 benches/compare_linear_ce.py                      # both shapes, 1 and 2 threads
  python3 benches/compare_linear_ce.py --threads 1 --shapes 2048x1024x32000
  python3 benches/compare_linear_ce.py --only matmul --threads 2
  python3 benches/compare_linear_ce.py --quick              # a smoke run, small shapes
"""

import argparse
import ctypes
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_SHAPES = [(2048, 1024, 32000), (4096, 512, 128256)]
# Small: one chunk at 4000 classes, four (167 tokens each) at 50000.
QUICK_SHAPES = [(256, 128, 4000), (512, 64, 50000)]
PATHS = ("ref", "chunked", "classloss")
PRODUCTS = ("logits", "d_hidden", "d_weight")
LIBRARIES = ("gemm", "ndarray", "torch.mm")
CARGO = ["cargo", "run", "--release", "-q", "-p", "classloss-bench",
         "--features", "matrixmultiply-threading"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--threads", type=int, action="append",
                   help="1 or 2 (repeat for both; default both): torch.set_num_threads, "
                        "RAYON_NUM_THREADS, MATMUL_NUM_THREADS")
    p.add_argument("--quick", action="store_true",
                   help=f"small shapes {' '.join(map(shape_str, QUICK_SHAPES))}, "
                        "few steps: a smoke run, rough numbers")
    p.add_argument("--shapes", type=parse_shapes,
                   help="comma-separated NxDxV (default "
                        f"{','.join(map(shape_str, FULL_SHAPES))})")
    p.add_argument("--only", choices=("head", "matmul"), help="run one part only")
    p.add_argument("--steps", type=int, help="timed steps per process (default 3)")
    p.add_argument("--rounds", type=int,
                   help="rounds of every path per cell (default 3, --quick 1)")
    p.add_argument("--reps", type=int,
                   help="timed calls per product and process (default 5, --quick 3)")
    # Internal: the PyTorch side of one measurement, in a fresh process.
    p.add_argument("--worker", choices=("ref", "chunked", "mm"), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--d", type=int, help=argparse.SUPPRESS)
    p.add_argument("--v", type=int, help=argparse.SUPPRESS)
    p.add_argument("--t", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if any(t < 1 for t in args.threads or ()):
        p.error("--threads must be positive")
    for name in ("steps", "rounds", "reps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    return args


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(s.isdigit() and int(s) > 0 for s in parts):
            raise argparse.ArgumentTypeError(f"{item!r} is not NxDxV")
        shapes.append(tuple(int(s) for s in parts))
    return shapes


def shape_str(shape):
    return "x".join(str(s) for s in shape)


# ---------------------------------------------------------------- measuring


def status_kib(field):
    """A field of /proc/self/status in KiB (0 off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def trim_heap():
    """glibc's malloc_trim(0): free pages that malloc kept go back to the OS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak():
    """Resets VmHWM to the current VmRSS; whether the kernel took it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return status_kib("VmHWM") <= status_kib("VmRSS") + 64


def cpu_snapshot():
    """(all CPUs' ticks, their idle ticks, this process's and its waited-for
    children's ticks), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            cpu = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17.
        return sum(cpu), cpu[3] + cpu[4], sum(int(v) for v in fields[11:15])
    except (OSError, ValueError, IndexError):
        return None


def others_since(snap, cores):
    """Cores that other processes kept busy on average since `snap` (as examples/perf/load.rs)."""
    now = cpu_snapshot()
    if snap is None or now is None or now[0] - snap[0] < 10 * cores:
        return None
    total = now[0] - snap[0]
    others = max(0, total - (now[1] - snap[1]) - (now[2] - snap[2]))
    return others / (total / cores)


# ------------------------------------------------------------------ workers


def torch_info(torch):
    return {
        "torch": torch.__version__,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "mkl": torch.backends.mkl.is_available(),
    }


def head_worker(args):
    """One PyTorch path at one shape: a JSON line as benches/linear_head.rs prints."""
    import torch
    F = torch.nn.functional
    torch.set_num_threads(args.threads[0])
    n, d, v = args.n, args.d, args.v
    out = {"bench": "linear_head", "path": args.worker, "n": n, "d": d, "v": v,
           "threads": args.threads[0], **torch_info(torch)}
    if args.worker == "chunked":
        missing = [name for name, ok in (
            ("F.linear_cross_entropy", hasattr(F, "linear_cross_entropy")),
            ("torch.nn.LinearCrossEntropyOptions",
             hasattr(torch.nn, "LinearCrossEntropyOptions"))) if not ok]
        if missing:
            out["skipped"] = f"{' and '.join(missing)} missing in torch {torch.__version__}"
            print(json.dumps(out), flush=True)
            return

    g = torch.Generator().manual_seed(1)
    h = torch.empty(n, d).uniform_(-1, 1, generator=g).requires_grad_()
    w = torch.empty(v, d).uniform_(-0.05, 0.05, generator=g).requires_grad_()
    b = torch.zeros(v, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    if args.worker == "ref":
        def loss_fn():
            return F.cross_entropy(F.linear(h, w, b), y)
    else:
        options = torch.nn.LinearCrossEntropyOptions()

        def loss_fn():
            return F.linear_cross_entropy(h, w, y, linear_bias=b, options=options)

    def step():
        h.grad = w.grad = b.grad = None
        loss = loss_fn()
        loss.backward()
        return loss.item()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = step()  # warm-up: the .grad tensors are now resident
    out["warnings"] = sorted({str(c.message).splitlines()[0] for c in caught})
    trim_heap()
    baseline = status_kib("VmRSS")
    hwm_reset = reset_peak()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    out.update(steps_s=times, median_s=statistics.median(times), loss=loss,
               baseline_kib=baseline, peak_kib=status_kib("VmHWM"), hwm_reset=hwm_reset)
    print(json.dumps(out), flush=True)


def mm_worker(args):
    """torch.mm on the head's three products: JSON lines as benches/matmul.rs prints."""
    import torch
    torch.set_num_threads(args.threads[0])
    n, d, v, t = args.n, args.d, args.v, args.t
    g = torch.Generator().manual_seed(1)
    h = torch.empty(t, d).uniform_(-1, 1, generator=g)
    w = torch.empty(v, d).uniform_(-0.05, 0.05, generator=g)
    gz = torch.empty(t, v).uniform_(-1e-4, 1e-4, generator=g)
    z, dh, dw = torch.empty(t, v), torch.empty(t, d), torch.zeros(v, d)
    scale = 1.0 / n
    calls = {
        "logits": lambda: torch.mm(h, w.t(), out=z),
        "d_hidden": lambda: torch.mm(gz, w, out=dh),
        "d_weight": lambda: dw.addmm_(gz.t(), h, alpha=scale),
    }
    times = {p: [] for p in PRODUCTS}
    with torch.no_grad():
        for p in PRODUCTS:
            calls[p]()  # warm-up
        for _ in range(args.reps):
            for p in PRODUCTS:
                t0 = time.perf_counter()
                calls[p]()
                times[p].append(time.perf_counter() - t0)
    info = torch_info(torch)
    for p in PRODUCTS:
        med = statistics.median(times[p])
        print(json.dumps({"bench": "matmul", "library": "torch.mm", "product": p,
                          "n": n, "d": d, "v": v, "t": t, "threads": args.threads[0],
                          "times_s": times[p], "median_s": med,
                          "gflops": 2 * t * d * v / med / 1e9, **info}), flush=True)


# ------------------------------------------------------------------- driver


def child_env(threads):
    return dict(os.environ, RAYON_NUM_THREADS=str(threads),
                MATMUL_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))


def run_json(cmd, threads):
    """The JSON lines `cmd` prints (a list of dicts), or [{"error": ...}] if it fails."""
    print(f"$ RAYON_NUM_THREADS={threads} MATMUL_NUM_THREADS={threads} "
          f"OMP_NUM_THREADS={threads} {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(threads), stdout=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        rc = proc.returncode
        why = (f"killed by signal {-rc}" + (" (out of memory?)" if rc == -9 else "")
               if rc < 0 else f"exit status {rc}")
        print(f"  failed: {why}", file=sys.stderr, flush=True)
        return [{"error": why}]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def dims_args(shape):
    n, d, v = shape
    return ["--n", str(n), "--d", str(d), "--v", str(v)]


def head_cmd(path, shape, threads, steps):
    rest = [*dims_args(shape), "--threads", str(threads), "--steps", str(steps)]
    if path == "classloss":
        return [*CARGO, "--bin", "linear_head", "--", *rest]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", path, *rest]


def run_head(shapes, threads_list, steps, rounds, cores):
    """(shape, threads) -> {path: [one result per round]}, and others' load per cell."""
    results, busy, skipped = {}, {}, None
    for shape in shapes:
        for threads in threads_list:
            cell = results[(shape, threads)] = {p: [] for p in PATHS}
            start = cpu_snapshot()
            for r in range(rounds):
                for path in PATHS:
                    if path == "chunked" and skipped:
                        cell[path].append({"skipped": skipped})
                        continue
                    print(f"[head {shape_str(shape)}, {threads} thr, round {r + 1}/{rounds}] "
                          f"{path}", file=sys.stderr, flush=True)
                    res = run_json(head_cmd(path, shape, threads, steps), threads)
                    res = res[0] if res else {"error": "no output"}
                    skipped = skipped or res.get("skipped")
                    cell[path].append(res)
            busy[("head", shape, threads)] = others_since(start, cores)
    return results, busy, skipped


def run_matmul(shapes, threads_list, reps, rounds, cores):
    """(shape, threads) -> (T, {(library, product): [GFLOP/s per round]}), and the load."""
    results, busy = {}, {}
    for shape in shapes:
        for threads in threads_list:
            start = cpu_snapshot()
            t, gflops = None, {}
            for r in range(rounds):
                print(f"[matmul {shape_str(shape)}, {threads} thr, round {r + 1}/{rounds}]",
                      file=sys.stderr, flush=True)
                rows = run_json([*CARGO, "--bin", "matmul", "--", *dims_args(shape),
                                 "--threads", str(threads), "--reps", str(reps)], threads)
                t = next((row["t"] for row in rows if "t" in row), t)
                if t is not None:
                    rows += run_json([sys.executable, str(Path(__file__).resolve()),
                                      "--worker", "mm", *dims_args(shape), "--t", str(t),
                                      "--threads", str(threads), "--reps", str(reps)],
                                     threads)
                for row in rows:
                    if "gflops" in row:
                        gflops.setdefault((row["library"], row["product"]), []).append(row)
            results[(shape, threads)] = (t, gflops)
            busy[("matmul", shape, threads)] = others_since(start, cores)
    return results, busy


def build():
    cmd = ["cargo", "build", "--release", "-p", "classloss-bench",
           "--features", "matrixmultiply-threading", "--bins"]
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


# ----------------------------------------------------------------- printing


def fmt(x):
    """3 significant digits, no exponent."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}" if x >= 1 else f"{x:.2g}"


def summarize(runs):
    """(median ms, median peak MiB, all resets taken, note) over a path's rounds."""
    ok = [r for r in runs if "median_s" in r]
    if not ok:
        bad = next((r.get("skipped") or r.get("error") for r in runs), None)
        return None, None, True, bad
    ms = statistics.median(r["median_s"] * 1e3 for r in ok)
    mib = statistics.median((r["peak_kib"] - r["baseline_kib"]) / 1024 for r in ok)
    return ms, mib, all(r["hwm_reset"] for r in ok), None


def print_head_table(results):
    print("| N x D x V | threads | ref ms | ref MiB | chunked ms | chunked MiB "
          "| classloss ms | classloss MiB | classloss / faster PyTorch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (shape, threads), cell in results.items():
        cols, times = [], {}
        for path in PATHS:
            ms, mib, reset, _ = summarize(cell[path])
            times[path] = ms
            star = "" if reset or mib is None else "*"
            cols += [fmt(ms), fmt(mib) + star]
        torch_times = [(times[p], p) for p in ("ref", "chunked") if times[p] is not None]
        if torch_times and times["classloss"] is not None:
            best, which = min(torch_times)
            ratio = f"{times['classloss'] / best:.2f}x ({which})"
        else:
            ratio = "-"
        print(f"| {shape_str(shape)} | {threads} | {' | '.join(cols)} | {ratio} |")


def print_matmul_table(results, threads_list):
    head = " | ".join(f"{lib} {t} thr" for t in threads_list for lib in LIBRARIES)
    print(f"| N x D x V | T | product | {head} |")
    print("| --- | ---: | --- |" + " ---: |" * (len(threads_list) * len(LIBRARIES)))
    shapes = list(dict.fromkeys(shape for shape, _ in results))
    for shape in shapes:
        n, d, v = shape
        t = next((results[(shape, th)][0] for th in threads_list
                  if results[(shape, th)][0] is not None), None)
        dims = {"logits": f"Z = H_c W^T ({t}x{d})({d}x{v})",
                "d_hidden": f"dH_c = G W ({t}x{v})({v}x{d})",
                "d_weight": f"dW += G^T H_c ({v}x{t})({t}x{d})"}
        for p in PRODUCTS:
            cols = []
            for th in threads_list:
                gflops = results[(shape, th)][1]
                for lib in LIBRARIES:
                    rows = gflops.get((lib, p), [])
                    cols.append(fmt(statistics.median(r["gflops"] for r in rows))
                                if rows else "-")
            print(f"| {shape_str(shape)} | {t if t is not None else '-'} | {dims[p]} | "
                  f"{' | '.join(cols)} |")


def machine_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def first(rows, key):
    return next((r[key] for r in rows if key in r), None)


def main():
    args = parse_args()
    if args.worker:
        args.threads = args.threads or [1]
        args.steps = args.steps or 3
        args.reps = args.reps or 5
        return mm_worker(args) if args.worker == "mm" else head_worker(args)
    if importlib.util.find_spec("torch") is None:
        sys.exit("compare_linear_ce.py needs PyTorch: pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu")

    shapes = args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES)
    threads_list = list(dict.fromkeys(args.threads or [1, 2]))
    steps = args.steps or 3
    rounds = args.rounds or (1 if args.quick else 3)
    reps = args.reps or (3 if args.quick else 5)
    cores = os.cpu_count() or 1

    build()
    head, matmul, busy, skipped = None, None, {}, None
    if args.only != "matmul":
        head, b, skipped = run_head(shapes, threads_list, steps, rounds, cores)
        busy.update(b)
    if args.only != "head":
        matmul, b = run_matmul(shapes, threads_list, reps, rounds, cores)
        busy.update(b)

    all_runs = [r for cell in (head or {}).values() for runs in cell.values() for r in runs]
    all_runs += [r for _, g in (matmul or {}).values() for rows in g.values() for r in rows]
    print(f"machine: {machine_name()} ({cores} logical CPUs), "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"torch {first(all_runs, 'torch')} (cpu capability {first(all_runs, 'capability')}, "
          f"MKL {first(all_runs, 'mkl')}); classloss kernels {first(all_runs, 'simd')}")
    print(f"rounds {rounds}, each path and shape in a fresh process per round"
          + (" (--quick: rough numbers)" if args.quick else ""))

    if head is not None:
        print()
        print(f"Fused linear + cross-entropy, f32, forward + backward (h, W, b): median "
              f"of {steps} steps after a warm-up, median over rounds; peak MiB = peak RSS "
              f"during the steps minus RSS before them (inputs and gradient buffers "
              f"resident)")
        print()
        print_head_table(head)
        print()
        chunks = ", ".join(
            f"{shape_str(shape)}: {first(cell['classloss'], 'chunk_rows')} tokens"
            for (shape, threads), cell in head.items() if threads == threads_list[0])
        print(f"classloss chunk: {chunks}")
        losses = "; ".join(
            f"{shape_str(shape)} " + ", ".join(
                f"{p} {first(cell[p], 'loss'):.4f}" for p in PATHS
                if first(cell[p], "loss") is not None)
            for (shape, threads), cell in head.items() if threads == threads_list[0])
        print(f"loss (first round; different random inputs): {losses}")
        if skipped:
            print(f"chunked: skipped, {skipped}")
        notes = sorted({w for cell in head.values() for r in cell["chunked"]
                        for w in r.get("warnings", ())})
        for w in notes:
            print(f"chunked path warned: {w}")
        errors = sorted({f"{shape_str(s)} {t} thr {p}: {r['error']}"
                         for (s, t), cell in head.items() for p in PATHS
                         for r in cell[p] if "error" in r})
        for e in errors:
            print(f"failed: {e}")
        if any(not r.get("hwm_reset", True) for r in all_runs):
            print("* /proc/self/clear_refs refused: peak over the whole process")

    if matmul is not None:
        print()
        print(f"The head's products per chunk of T tokens, f32, GFLOP/s (2 T D V flops), "
              f"median of {reps} calls after a warm-up, median over rounds; T = "
              f"chunk_rows_for(V), at most N")
        print()
        print_matmul_table(matmul, threads_list)
        nd = sorted({r["threads"] for _, g in matmul.values()
                     for (lib, _), rows in g.items() if lib == "ndarray" for r in rows})
        print()
        print(f"ndarray (matrixmultiply) ran on {', '.join(map(str, nd))} thread(s) "
              "(MATMUL_NUM_THREADS)")

    print()
    print(f"other processes kept busy (of {cores} cores): " + ", ".join(
        f"{part} {shape_str(shape)} {threads} thr {'?' if v is None else f'{v:.2f}'}"
        for (part, shape, threads), v in busy.items()))
    if any(v is not None and v > 0.1 for v in busy.values()):
        print("warning: the machine was not quiet; these numbers are disturbed")


if __name__ == "__main__":
    main()
