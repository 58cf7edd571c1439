"""Where a training iteration's time goes, op by op: torch.profiler over whole iterations of a script.

    python benchmarks/profile_ops.py                                   # RF, 128 envs x 128 steps, float32
    python benchmarks/profile_ops.py --script curiosity_idf -- --bf16  # arguments after -- go to the script

Runs the script in this process, as `python SCRIPT.py ...` would, for 1 + --iterations iterations. The
first iteration (allocations, lazy initialisation) is not profiled: the profiler starts at the first
iteration's last optimizer step and stops at the last one's, so it covers --iterations whole iterations
(rollout inference, env, intrinsic reward, advantages, update, log). It prints the script's own phase
split (its --profile lines) and a table of the ops that took the most time (self CPU time, summed over
every call), grouped by kind: convolutions, matrix products, elementwise ops, casts and copies, indexing,
the optimizer, and what is no torch op at all (ALE's step as the main thread waits for it, numpy, Python).
"""
import argparse
import tempfile
import time
from collections import defaultdict

import tyro
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.profiler import ProfilerActivity, profile

from common import SCRIPTS, load_script, run_in_process

KINDS = {  # aten op names (without "aten::") by kind; autograd's own bookkeeping goes to "autograd"
    "convolution": ("mkldnn_convolution", "convolution_backward", "convolution", "_convolution",
                    "_slow_conv2d_forward", "_slow_conv2d_backward"),  # the slow ones: no oneDNN kernel
    "matrix product": ("mm", "addmm", "bmm", "matmul", "linear"),
    "optimizer (Adam)": ("_fused_adam_", "_foreach_add_", "_foreach_mul_"),
    "cast or copy": ("to", "_to_copy", "copy_", "contiguous", "clone"),
    "indexing": ("index", "index_put_", "gather", "scatter_", "cat", "stack", "one_hot", "select", "slice"),
    "leaky ReLU and its backward": ("leaky_relu", "leaky_relu_", "leaky_relu_backward"),
}


def kind_of(op: str) -> str:
    if not op.startswith("aten::"):
        return "autograd and other"
    return next((kind for kind, names in KINDS.items() if op[6:] in names), "elementwise and reductions")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", default="curiosity_rf", choices=SCRIPTS)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=2, help="iterations profiled, after one unprofiled")
    parser.add_argument("--top", type=int, default=25, help="rows of the per-op table")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]

    log_dir = tempfile.TemporaryDirectory()
    argv = ["--num-envs", str(args.num_envs), "--num-steps", str(args.num_steps),
            "--total-timesteps", str(args.num_envs * args.num_steps * (1 + args.iterations)),
            "--obs-norm-steps", "256", "--save-every", "0", "--log-dir", log_dir.name, "--profile", *extra]
    script_args = tyro.cli(load_script(args.script).Args, args=argv)
    steps_per_iteration = script_args.update_epochs * script_args.num_minibatches

    profiler = profile(activities=[ProfilerActivity.CPU])
    steps, window = 0, {}

    def on_optimizer_step(optimizer, *_):  # the profiler window opens and closes at iteration ends
        nonlocal steps
        steps += 1
        if steps == steps_per_iteration:
            profiler.start()
            window["start"] = time.perf_counter()
        elif steps == steps_per_iteration * (1 + args.iterations):
            window["end"] = time.perf_counter()
            profiler.stop()

    register_optimizer_step_post_hook(on_optimizer_step)
    print(f"# {args.script} {' '.join(argv)}", flush=True)
    run_in_process(args.script, argv)
    log_dir.cleanup()
    if "end" not in window:
        raise SystemExit("error: the run stopped before the profiled iterations ended (see its output above)")

    seconds = (window["end"] - window["start"]) / args.iterations
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    by_kind = defaultdict(float)
    for e in events:
        by_kind[kind_of(e.key)] += e.self_cpu_time_total / 1e6 / args.iterations
    by_kind["not a torch op (env, numpy, Python)"] = seconds - sum(by_kind.values())
    print(f"\nseconds per iteration: {seconds:.2f} (profiled; the profiler itself adds a little)")
    print("\n| kind | s / iteration | share |\n| --- | ---: | ---: |")
    for kind, s in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {s:.2f} | {s / seconds:.0%} |")
    print(f"\n| op (top {args.top} by self time) | kind | calls / iteration | s / iteration | share |")
    print("| --- | --- | ---: | ---: | ---: |")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        s = e.self_cpu_time_total / 1e6 / args.iterations
        print(f"| {e.key} | {kind_of(e.key)} | {e.count // args.iterations} | {s:.3f} | {s / seconds:.1%} |")


if __name__ == "__main__":
    main()
