"""Does a change leave what the scripts compute as it was? Runs each script for a few small iterations on
the CPU (a real Atari game, at a fixed seed) and writes every scalar it logs, timings aside, to a JSON
file; with --compare, prints each scalar that differs from an earlier such file and exits 1 if any does.

Four settings per script: `tiny` (4 envs x 16 steps, 3 iterations, a checkpoint written
after iteration 2), `episodes` (8 envs x 64 steps, 6 iterations, episodes cut at 100 steps, so that
episode returns, lengths and the mix script's rooms are logged too), `bf16` (tiny's run under --bf16) and
`torchrun` (tiny's run as two torchrun processes on the CPU). The first two take about 3 minutes on
2 cores for all five scripts; `bf16` is slow on a CPU without bfloat16 units (README, Speed).

    git stash && python benchmarks/same_numbers.py --out before.json && git stash pop
    python benchmarks/same_numbers.py --compare before.json

Scalars are compared exactly: on one machine, on the CPU, a refactoring that changes nothing computed
gives identical numbers, in float32 and in bfloat16, in one process or two. A torch upgrade or another
CPU may change the last bits."""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import ROOT, SCRIPTS

SETTINGS = {
    "tiny": ["--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "2",
             "--obs-norm-steps", "64", "--total-timesteps", str(4 * 16 * 3),
             "--save-every", "2"],
    "episodes": ["--num-envs", "8", "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "1",
                 "--obs-norm-steps", "64", "--total-timesteps", str(8 * 64 * 6), "--max-episode-steps", "100",
                 "--seed", "5"],
}
SETTINGS["bf16"] = [*SETTINGS["tiny"], "--bf16"]
SETTINGS["torchrun"] = [*SETTINGS["tiny"], "--total-timesteps", str(2 * 4 * 16 * 3)]  # 3 iterations of 2
LAUNCHER = {"torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]}
NOT_COMPUTED = ("charts/SPS", "_seconds")  # wall-clock measurements, different at every run


def logged_scalars(script: str, setting: str) -> dict:
    """{tag: [[step, value], ...]} of one run of `script` in `setting`, in a directory of its own."""
    with tempfile.TemporaryDirectory() as log_dir:
        cmd = [sys.executable, *LAUNCHER.get(setting, []), str(ROOT / f"{script}.py"), *SETTINGS[setting],
               "--log-dir", log_dir, "--no-cuda"]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"error: {script} {setting} failed:\n{result.stderr[-2000:]}")
        (run_dir,) = [p for p in Path(log_dir).iterdir() if p.is_dir()]
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        return {tag: [[e.step, e.value] for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
                if not tag.endswith(NOT_COMPUTED)}


def differences(before: dict, after: dict) -> list[str]:
    """One line per run, tag or logged point of `before` that `after` lacks or logs with another value."""
    lines = []
    for run in sorted(set(before) | set(after)):
        if run not in after or run not in before:
            lines.append(f"{run}: only in the {'earlier' if run in before else 'new'} results")
            continue
        for tag in sorted(set(before[run]) | set(after[run])):
            old, new = before[run].get(tag), after[run].get(tag)
            if old is None or new is None or [step for step, _ in old] != [step for step, _ in new]:
                lines.append(f"{run} {tag}: logged at steps {old and [s for s, _ in old]} then, "
                             f"{new and [s for s, _ in new]} now")
                continue
            lines += [f"{run} {tag} step {step}: {value_then} then, {value_now} now"
                      for (step, value_then), (_, value_now) in zip(old, new) if value_then != value_now]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", nargs="+", default=SCRIPTS, choices=SCRIPTS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="default: all four")
    parser.add_argument("--out", type=Path, help="write the scalars to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with this JSON file, written earlier by --out")
    args = parser.parse_args()
    if args.compare is not None and not args.compare.is_file():
        raise SystemExit(f"error: no results at {str(args.compare)!r}; write them first with --out")
    results = {}
    for script in args.scripts:
        for setting in args.settings:
            results[f"{script}/{setting}"] = logged_scalars(script, setting)
            print(f"{script}/{setting}: {len(results[f'{script}/{setting}'])} scalars", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        before = {run: scalars for run, scalars in before.items() if run in results}  # only what ran now
        lines = differences(before, results)
        points = sum(len(values) for scalars in results.values() for values in scalars.values())
        print("\n".join(lines) if lines else f"identical: {points} logged values in {len(results)} runs")
        raise SystemExit(1 if lines else 0)


if __name__ == "__main__":
    main()
