"""Training speed of each script beside the speed of its vector env alone, measured in one run.

    python benchmarks/throughput.py                       # every script, 128 envs x 128 steps
    python benchmarks/throughput.py --scripts curiosity_rf --num-envs 32 -- --num-minibatches 4

For each script: the env-only SPS (the same ALE vector env stepping random actions, measured just
before the script runs, so both see the same machine load), the script's training SPS (agent steps
per second of whole iterations, the first one left out as warm-up), their ratio, seconds per
iteration, the peak RSS of the training process and the peak memory of it and every process it
started (PSS: shared pages split among the processes sharing them; a gymnasium world runs each env in a
process of its own). Arguments after `--` go to every script.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import ROOT, SCRIPTS, load_script


def env_only_sps(env_id: str, num_envs: int, num_steps: int) -> float:
    """Agent steps per second of the scripts' vector env under uniform random actions."""
    rf = load_script("curiosity_rf")
    envs = rf.make_envs(env_id, num_envs, max_episode_steps=4500)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    n = envs.single_action_space.n
    actions = [rng.integers(n, size=num_envs) for _ in range(num_steps)]
    start = time.perf_counter()
    for a in actions:
        envs.step(a)
    elapsed = time.perf_counter() - start
    envs.close()
    return num_envs * num_steps / elapsed


def tree_pss(pid: int) -> int:
    """Bytes held by a process and all its descendants, each shared page split among its sharers (PSS)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += int(re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)[1])
        except (OSError, TypeError):
            continue
    return total * 1024


def training_run(script: str, env_id: str, num_envs: int, num_steps: int, iterations: int, extra: list[str]):
    """Runs a script for `iterations` iterations; returns (SPS, seconds per iteration, peak RSS in GiB,
    peak PSS of its process tree in GiB, sampled every second)."""
    with tempfile.TemporaryDirectory() as log_dir:
        cmd = [sys.executable, str(ROOT / f"{script}.py"), "--env-id", env_id, "--num-envs", str(num_envs),
               "--num-steps", str(num_steps), "--total-timesteps", str(num_envs * num_steps * iterations),
               "--log-dir", log_dir, *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        chunks = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))
        reader.start()
        peak_pss = 0
        while not (waited := os.wait4(proc.pid, os.WNOHANG))[0]:
            peak_pss = max(peak_pss, tree_pss(proc.pid))
            time.sleep(1)
        reader.join()
        output, (_, status, usage) = chunks[0], waited
    if status != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{output[-2000:]}")
    sps = [int(s) for s in re.findall(r" SPS (\d+) ", output)]
    timed = sps[1:] or sps  # the first iteration pays for allocations and lazy initialisation
    mean_sps = float(np.mean(timed))
    return mean_sps, num_envs * num_steps / mean_sps, usage.ru_maxrss / 2**20, peak_pss / 2**30  # (KiB)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", nargs="+", default=SCRIPTS, choices=SCRIPTS)
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=3, help="training iterations per script (the first is not timed)")
    parser.add_argument("--json", help="also write the results to this file")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]

    import torch

    print(f"# {os.cpu_count()} CPUs, torch {torch.__version__}, CUDA: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}; "
          f"{args.env_id}, {args.num_envs} envs x {args.num_steps} steps {' '.join(extra)}", flush=True)
    rows = []
    for script in args.scripts:
        env_sps = env_only_sps(args.env_id, args.num_envs, max(args.num_steps, 200))
        sps, seconds, rss, pss = training_run(script, args.env_id, args.num_envs, args.num_steps, args.iterations,
                                              extra)
        rows.append({"script": script, "env_sps": env_sps, "train_sps": sps, "ratio": sps / env_sps,
                     "seconds_per_iteration": seconds, "peak_rss_gb": rss, "peak_pss_all_gb": pss})
        print(f"  {script}: {sps:.0f} SPS", flush=True)

    print("\n| script | env-only SPS | training SPS | ratio | s / iteration | peak RSS (GiB) "
          "| all processes, PSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['script']} | {r['env_sps']:.0f} | {r['train_sps']:.0f} | {r['ratio']:.3f} | "
              f"{r['seconds_per_iteration']:.1f} | {r['peak_rss_gb']:.2f} | {r['peak_pss_all_gb']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "extra": extra, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
