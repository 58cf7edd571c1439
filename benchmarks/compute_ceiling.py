"""The highest training speed each script can reach on this machine, from its FLOPs and the machine's peak.

    python benchmarks/compute_ceiling.py                          # every script, float32
    python benchmarks/compute_ceiling.py --scripts curiosity_rf -- --bf16

For each script: the FLOPs its networks spend per agent step (inference, intrinsic reward and the update,
counted by torch's FlopCounterMode over one real training iteration at a small size), this machine's dense
matmul rate (float32, or bfloat16 when `--bf16` is passed through), the env-only SPS, and the ceiling they
imply: 1 / (FLOPs per step / matmul rate + 1 / env-only SPS), i.e. every FLOP at the matmul peak and the
env never overlapped with compute. Beside benchmarks/throughput.py's measured SPS it says how close to
the hardware a script is, and whether a target ratio is reachable at all. Convs and small matmuls run
below the large-matmul rate, so the real limit is lower than this ceiling.
"""
import argparse
import contextlib
import io
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from throughput import env_only_sps
from common import SCRIPTS, run_in_process


def flops_per_step(script: str, env_id: str, extra: list[str], num_envs: int = 8, num_steps: int = 128) -> float:
    """FLOPs per agent step of one training iteration of `script`, run in this process."""
    with tempfile.TemporaryDirectory() as log_dir:
        argv = ["--env-id", env_id, "--num-envs", str(num_envs), "--num-steps", str(num_steps),
                "--num-minibatches", "2", "--total-timesteps", str(num_envs * num_steps), "--obs-norm-steps", "256",
                "--save-every", "0", "--no-cuda", "--log-dir", log_dir, *extra]
        with FlopCounterMode(display=False) as counter, contextlib.redirect_stdout(io.StringIO()):
            run_in_process(script, argv)
    return counter.get_total_flops() / (num_envs * num_steps)


def matmul_flops_per_second(dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """Best rate of a large square matmul: the most this machine's cores do per second in `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", nargs="+", default=SCRIPTS, choices=SCRIPTS)
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--num-envs", type=int, default=128, help="envs of the env-only measurement")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]

    dtype = torch.bfloat16 if "--bf16" in extra else torch.float32
    peak = matmul_flops_per_second(dtype)
    env_sps = env_only_sps(args.env_id, args.num_envs, 200)
    print(f"# {torch.get_num_threads()} threads, {str(dtype)[6:]} matmul peak {peak / 1e9:.0f} GFLOP/s, "
          f"env-only {env_sps:.0f} SPS at {args.num_envs} envs; {args.env_id} {' '.join(extra)}", flush=True)
    print("\n| script | GFLOP per agent step | compute-only SPS at peak | ceiling SPS with the env | ceiling ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for script in args.scripts:
        flops = flops_per_step(script, args.env_id, extra)
        ceiling = 1 / (flops / peak + 1 / env_sps)
        print(f"| {script} | {flops / 1e9:.3f} | {peak / flops:.0f} | {ceiling:.0f} | {ceiling / env_sps:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
