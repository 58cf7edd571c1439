"""Runs a grid of (script x game x seed) runs, each to a budget in frames, and never loses track of one.

    python benchmarks/run.py --preset smoke            # every variant, 2 games, a few minutes on a CPU
    python benchmarks/run.py --preset cpu              # a few hours on a 2-core machine
    python benchmarks/run.py --preset cpu10m --results-dir benchmarks --name cpu10m_results --only float32
    python benchmarks/run.py --preset cpu10m-seeds --results-dir benchmarks --name cpu10m_results  # seeds 2-3
    python benchmarks/run.py --preset cpu50m --results-dir benchmarks --name cpu50m_results  # RF to 50M
    python benchmarks/run.py --preset maze --results-dir benchmarks --name maze_results  # the maze: 2 h a run
    python benchmarks/run.py --preset gpu-short        # RF and IDF on the paper's 8 games: one GPU machine
    python benchmarks/run.py --preset gpu-variants     # all four variants on Breakout and SpaceInvaders: one GPU
    python benchmarks/run.py --preset paper --workers 8 -- --num-envs 128
    python benchmarks/run.py --name mine --scripts curiosity_rf --env-ids PongNoFrameskip-v4 \
        --seeds 1 2 3 --frames 4000000 -- --num-envs 64

Results go to benchmarks/results/NAME/: runs/ (TensorBoard, read by report.py), logs/ (each run's
output, streamed as it runs) and status/ (one JSON per finished run). Running the same grid again
skips the runs that finished and continues the others from their checkpoints; with a larger --frames it
continues the finished ones too, to the new budget (`--frames 200000000` after a 10M-frame grid). Arguments
after `--` go to every run. Failed runs are listed at the end and the exit code is 1.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

from common import ROOT, SCRIPTS

CURIOSITY = ["curiosity_rf", "curiosity_idf", "curiosity_vae", "curiosity_pixels"]
PAPER_GAMES = ["Breakout", "BeamRider", "MontezumaRevenge", "Pong", "Qbert", "Riverraid", "Seaquest", "SpaceInvaders"]
SPARSE_GAMES = ["MontezumaRevenge", "Freeway", "Gravitar", "PrivateEye", "Venture"]
SMALL = ["--num-envs", "32", "--num-minibatches", "4"]
PRESETS = {
    # Does every script still run end to end? Minutes on a laptop CPU; says nothing about learning.
    "smoke": dict(scripts=CURIOSITY + ["curiosity_extrinsic_mix"],
                  env_ids=["BreakoutNoFrameskip-v4", "MontezumaRevengeNoFrameskip-v4"], seeds=[1],
                  frames=4 * 8 * 64 * 3, extra=["--num-envs", "8", "--num-steps", "64", "--num-minibatches", "2",
                                                 "--obs-norm-steps", "512"]),
    # Does each variant beat the random agent on Breakout, RF on a held-out game where the paper's RF rises early,
    # and the mix script on a sparse game? The VAE costs about 10x and pixels about 30x RF's time per step on a
    # CPU, so they get smaller budgets; cheapest first.
    "cpu": dict(scripts=["curiosity_rf", "curiosity_idf"], env_ids=["BreakoutNoFrameskip-v4"], seeds=[1],
                frames=2_000_000, extra=SMALL,
                then=dict(scripts=["curiosity_extrinsic_mix"], env_ids=["FreewayNoFrameskip-v4"],
                          then=dict(scripts=["curiosity_rf"], env_ids=["SpaceInvadersNoFrameskip-v4"],
                                    then=dict(scripts=["curiosity_vae"], env_ids=["BreakoutNoFrameskip-v4"],
                                              frames=500_000, then=dict(scripts=["curiosity_pixels"], frames=250_000))))),
    # Is each variant where the paper was at the same frames, on every game? One GPU machine (H100, 16 cores),
    # 4 runs sharing it, about 25 minutes: 4M frames per run is derived from the SPS of 4 RF runs side by side
    # (about 16k agent steps/s together), not measured as a preset.
    "gpu-short": dict(scripts=["curiosity_rf", "curiosity_idf"], env_ids=[f"{g}NoFrameskip-v4" for g in PAPER_GAMES],
                      seeds=[1], frames=4_000_000, extra=[], workers=4),
    # Do the VAE and pixels learn at a real budget? Every curiosity variant on Breakout and SpaceInvaders, sized
    # as gpu-short; the VAE's and pixels' GPU speed is not measured yet, so their runs may take longer.
    "gpu-variants": dict(scripts=CURIOSITY, env_ids=["BreakoutNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4"],
                         seeds=[1], frames=4_000_000, extra=[], workers=4),
    # The paper's first point at its own batch (128 envs x 128 steps, 8 minibatches): RF and IDF at 10M frames,
    # most informative first; the VAE and pixels at the cpu preset's size. Precision is what this CPU does fast
    # (cpu10m_precision), recorded in every run's tag; with bfloat16, RF on Breakout in float32 comes last as its
    # control. A 2-core CPU with bfloat16 units takes about 17 s an RF iteration (README, Speed).
    "cpu10m": lambda: cpu10m(bf16_is_fast()),
    # The method or the seed? Seeds 2 and 3 of the run at the band's edge (RF on Breakout) and of the one
    # below it (IDF on SpaceInvaders), as cpu10m runs them and in its folder (--name cpu10m_results), beside
    # their seed 1 of the same precision tag: the report gives the mean over the three and its spread.
    "cpu10m-seeds": lambda: chain(dict(scripts=["curiosity_rf"], env_ids=["BreakoutNoFrameskip-v4"],
                                       seeds=[2, 3], frames=10_000_000, **precision(bf16_is_fast())),
                                  dict(scripts=["curiosity_idf"], env_ids=["SpaceInvadersNoFrameskip-v4"])),
    # Does RF on Breakout keep the paper's shape past its first point (23 at 10M, 58 at 30M, 129 at 50M
    # frames)? One run to 50M frames at the paper's batch: about 13 h in float32 on 2 AVX2 cores, in bfloat16
    # about 4 h with AMX and 4.6 h with AVX-512 BF16. Seed 2, so that cpu10m-seeds' 10M-frame run of it,
    # copied in with its checkpoint, can save the first 3 h: with a constant learning rate, its checkpoint is
    # what a 50M-frame run cut at 10M would save.
    "cpu50m": lambda: dict(scripts=["curiosity_rf"], env_ids=["BreakoutNoFrameskip-v4"], seeds=[2],
                           frames=50_000_000, **precision(bf16_is_fast())),
    # The paper's maze (benchmarks/worlds.py): does the goal's reward alone find the goal, does curiosity added to it,
    # and does a TV the agent can switch slow it? 32 envs; 1M agent steps take about 2 h of RF training on 2 cores.
    "maze": lambda: maze(),
    # The paper's main figure: 8 games, every curiosity variant, 3 seeds, 10^8 agent steps. GPUs.
    "paper": dict(scripts=CURIOSITY, env_ids=[f"{g}NoFrameskip-v4" for g in PAPER_GAMES], seeds=[1, 2, 3],
                  frames=400_000_000, extra=[]),
    # The paper's sparse-reward table: curiosity plus the game's reward.
    "paper-sparse": dict(scripts=["curiosity_extrinsic_mix"], env_ids=[f"{g}NoFrameskip-v4" for g in SPARSE_GAMES],
                         seeds=[1, 2, 3], frames=400_000_000, extra=[]),
}


def bf16_is_fast() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX); elsewhere torch emulates it, 10x slower
    than float32 (README, Speed)."""
    import torch
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def chain(first: dict, *rest: dict) -> dict:
    """Grids run one after another, each inheriting what it does not set from the one before (`then`)."""
    return {**first, "then": chain(*rest)} if rest else first


def precision(bf16: bool) -> dict:
    """A grid's precision, said in its runs' keys: bfloat16 where the CPU does it fast, else float32."""
    return dict(extra=["--bf16"], tag="bf16") if bf16 else dict(extra=[], tag="float32")


def cpu10m(bf16: bool) -> dict:
    breakout, invaders = "BreakoutNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4"
    control = [dict(scripts=["curiosity_rf"], env_ids=[breakout], frames=10_000_000, extra=[], tag="float32")]
    first = dict(scripts=["curiosity_rf"], env_ids=[breakout], seeds=[1], frames=10_000_000,
                 **precision(bf16))
    return chain(first,
                 dict(scripts=["curiosity_idf"]),
                 dict(scripts=["curiosity_rf"], env_ids=[invaders]),
                 dict(scripts=["curiosity_idf"]),
                 dict(scripts=["curiosity_rf"], env_ids=["SeaquestNoFrameskip-v4", "BeamRiderNoFrameskip-v4"]),
                 dict(scripts=["curiosity_vae", "curiosity_pixels"], env_ids=[breakout], frames=2_000_000,
                      extra=[*SMALL, *precision(bf16)["extra"]]),
                 *(control if bf16 else []))


def maze() -> dict:
    """The goal's reward alone (tag goal_only), then RF (the mix script) and IDF with the paper's mix r = 1.0 * clip(r_ext)
    + 0.01 * r_int, in the maze and in its TV variant; then pure curiosity (RF) in both at half the budget."""
    maze, tv = "benchmarks.worlds:Maze-v0", "benchmarks.worlds:MazeTV-v0"
    mix = [*SMALL, "--int-coef", "0.01", "--ext-coef", "1"]
    return chain(dict(scripts=["curiosity_extrinsic_mix"], env_ids=[maze], seeds=[1], frames=4_000_000,
                      extra=[*SMALL, "--int-coef", "0", "--ext-coef", "1"], tag="goal_only"),
                 dict(scripts=["curiosity_extrinsic_mix"], extra=mix, tag=None),
                 dict(scripts=["curiosity_idf"], tag="mix"),
                 dict(scripts=["curiosity_extrinsic_mix"], env_ids=[tv], tag=None),
                 dict(scripts=["curiosity_idf"], tag="mix"),
                 dict(scripts=["curiosity_rf"], env_ids=[maze, tv], frames=2_000_000, extra=SMALL, tag=None))


def grid(scripts, env_ids, seeds, frames, extra, tag=None, then=None):
    """The runs of a preset; `then` is a further grid that inherits every field it does not set. `tag` tells
    apart runs of one script, game and seed that differ in their extra arguments."""
    runs = [dict(script=s, env_id=e, seed=seed, frames=frames, extra=extra, tag=tag)
            for s in scripts for e in env_ids for seed in seeds]
    inherited = dict(env_ids=env_ids, seeds=seeds, frames=frames, extra=extra, tag=tag)
    return runs + (grid(**{**inherited, **then}) if then else [])


def with_grid(spec: dict, scripts=None, env_ids=None, seeds=None, frames=None) -> dict:
    """A preset's grid with the command line's fields. Seeds alone keep every part of its chain, each at the
    new seeds (`--preset maze --seeds 2`: the whole preset at seed 2); scripts, games or a budget name a grid
    of their own and drop the preset's later parts."""
    if seeds is not None:
        later = {"then": with_grid(spec["then"], seeds=seeds)} if "then" in spec else {}
        spec = {**spec, "seeds": seeds, **later}
    own = {field: value for field, value in dict(scripts=scripts, env_ids=env_ids, frames=frames).items()
           if value is not None}
    return {**{k: v for k, v in spec.items() if k != "then"}, **own} if own else spec


def with_extra(spec: dict, extra: list, tag: str = None, first: bool = True) -> dict:
    """A grid with the arguments after `--` added to every run, and `--tag` to every run's tag (goal_only ->
    goal_only-TAG), so that runs given other arguments stay apart from the preset's own: to the first part
    of a chain and to each later part that sets its own (the others inherit them, with what was added)."""
    later = {"then": with_extra(spec["then"], extra, tag, first=False)} if "then" in spec else {}
    own = {"extra": spec.get("extra", []) + extra} if first or "extra" in spec else {}
    if tag and (first or "tag" in spec):
        own["tag"] = "-".join(filter(None, [spec.get("tag"), tag]))
    return {**spec, **own, **later}


def run_key(run: dict) -> str:
    tag = f"__{run['tag']}" if run.get("tag") else ""
    return f"{run['script']}__{re.sub('[/:]', '-', run['env_id'])}__s{run['seed']}{tag}"


def command(run: dict, out: Path) -> list[str]:
    """The run's command line, run from the repository root; its paths are relative to it, so that logs and
    status files hold no path of the machine that made them."""
    log_dir = os.path.relpath(out / "runs" / run_key(run), ROOT)
    return ["python", f"{run['script']}.py", "--env-id", run["env_id"], "--seed", str(run["seed"]),
            "--total-timesteps", str(run["frames"] // 4), "--exp-name", run["script"], "--log-dir", log_dir,
            *run["extra"]]


def without_budget(cmd: list[str]) -> list[str]:
    """A run's command line less its interpreter and its budget: two command lines that agree on it are one
    run asked for different numbers of frames (the scripts schedule nothing by the budget: their learning
    rate is constant, so a run continued to a larger budget goes on as it would have, its envs on new
    episodes as at any resume)."""
    i = cmd.index("--total-timesteps")
    return cmd[1:i] + cmd[i + 2:]


def machine() -> str:
    """What a run's wall time was measured on, as the README's tables name it: the CPU's model and its fastest
    bfloat16 unit (AMX, AVX-512 BF16, or AVX2 where bfloat16 is emulated), and the GPU where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in reversed(info) if ":" in line)  # the first CPU's
    field = {name.strip(): value.strip() for name, value in fields.items()}.get
    flags = set(field("flags", "").split())
    unit = next((u for flag, u in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx2", "AVX2"))
                 if flag in flags), None)
    name = f"{field('model name') or platform.machine()}{f' with {unit}' if unit else ''}"
    gpu = shutil.which("nvidia-smi") and subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout
    return f"{name}, {gpu.splitlines()[0].strip()}" if gpu else name


STOPPED = (129, 130, 143)  # a run's exit after it saved and stopped on SIGHUP, SIGINT or SIGTERM
STOPPING = threading.Event()  # set once a run stops so: no further run starts


def execute(run: dict, out: Path) -> Optional[dict]:
    """Runs one grid point, streaming its output to logs/KEY.log; writes status/KEY.json when it ends and
    returns it (None if a stop came first). A run that was cut short (Ctrl-C, a crash, a reboot) continues
    from its checkpoint, exactly as if never stopped."""
    if STOPPING.is_set():
        return None
    key, cmd = run_key(run), command(run, out)
    status_path = out / "status" / f"{key}.json"
    earlier = json.loads(status_path.read_text()) if status_path.exists() else {}
    same_run = not earlier or without_budget(earlier["command"]) == without_budget(cmd)  # or a larger budget
    checkpoints = sorted((out / "runs" / key).glob("*/checkpoint.pt")) if same_run else []
    if checkpoints:
        resume = os.path.relpath(checkpoints[-1], ROOT)
        cmd = [*cmd[:2], "--resume", resume, "--total-timesteps", str(run["frames"] // 4)]
    else:
        shutil.rmtree(out / "runs" / key, ignore_errors=True)  # no half-written events from a run with no checkpoint
    start = time.time()
    with open(out / "logs" / f"{key}.log", "a" if checkpoints else "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        process = subprocess.run([sys.executable, *cmd[1:]], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    returncode = process.returncode
    if returncode in STOPPED:  # the run saved and stopped on a signal (a terminal's Ctrl-C
        STOPPING.set()  # reaches the runner too, but a runner started in the background ignores SIGINT)
    earlier = earlier if checkpoints else {}
    seconds = round(time.time() - start, 1)
    machines = earlier.get("machines", {})  # a run continued on another machine names both
    here = machine()
    machines[here] = round(machines.get(here, 0.0) + seconds, 1)
    status = dict(key=key, returncode=returncode, seconds=round(earlier.get("seconds", 0.0) + seconds, 1),
                  machines=machines, command=command(run, out), executed=cmd, **run)  # over all its segments
    status_path.parent.mkdir(parents=True, exist_ok=True)  # (a `git rm` of the folder's last status file
    status_path.write_text(json.dumps(status, indent=1))  # while a run went on took the folder with it)
    return status


def finished(out: Path, run: dict) -> bool:
    """Whether the run finished, to its budget or past it (taken on to a larger one)."""
    path = out / "status" / f"{run_key(run)}.json"
    if not path.exists():
        return False
    status = json.loads(path.read_text())
    return status["returncode"] == 0 and status["frames"] >= run["frames"] \
        and without_budget(status["command"]) == without_budget(command(run, out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, help="a ready-made grid; the options below override its parts")
    parser.add_argument("--name", help="results folder under benchmarks/results (default: the preset's name)")
    parser.add_argument("--scripts", nargs="+", choices=SCRIPTS)
    parser.add_argument("--env-ids", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--frames", type=int, help="budget of each run in frames (4 per agent step)")
    parser.add_argument("--workers", type=int, help="runs at once (each uses all cores it can get); default: "
                        "the preset's (4 for the gpu presets), else 1")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--tag", help="added to each run's key (script__game__sSEED__TAG; after a preset's "
                        "own tag, -TAG), for runs that differ from others of the same script, game and seed "
                        "only in the arguments after --")
    parser.add_argument("--only", nargs="+", help="run only the grid's runs whose key (script__game__sSEED, "
                        "then __TAG if any) contains one of these strings")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.preset is None and not (args.scripts and args.env_ids and args.seeds and args.frames):
        parser.error("give --preset, or all of --scripts, --env-ids, --seeds and --frames")
    preset = PRESETS.get(args.preset, {})
    spec = dict(preset() if callable(preset) else preset)
    fields = ("scripts", "env_ids", "seeds", "frames")
    spec = with_grid(spec, **{field: getattr(args, field) for field in fields})
    spec = with_extra(spec, extra, args.tag)
    workers = args.workers or spec.pop("workers", 1)
    spec.pop("workers", None)
    missing = sorted({s for s in spec["scripts"] if s not in SCRIPTS})
    if missing:
        parser.error(f"scripts not in this checkout: {', '.join(missing)}")
    out = Path(args.results_dir) / (args.name or args.preset or "custom")
    for sub in ("runs", "logs", "status"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    runs = [r for r in grid(**spec) if not args.only or any(part in run_key(r) for part in args.only)]
    todo = [r for r in runs if not finished(out, r)]
    for run in todo:  # a run asked for another budget: continued from its checkpoint to a larger one, or not
        key = run_key(run)
        path = out / "status" / f"{key}.json"
        earlier = json.loads(path.read_text()) if path.exists() else None
        if not earlier or without_budget(earlier["command"]) != without_budget(command(run, out)) \
                or earlier["frames"] == run["frames"]:
            continue
        if earlier["frames"] > run["frames"]:  # (and it has not finished)
            raise SystemExit(f"error: {key} in {out} was given {earlier['frames']:,} frames, not "
                             f"{run['frames']:,}; a smaller budget is another run: give it --tag or --name")
        if not list((out / "runs" / key).glob("*/checkpoint.pt")):  # (else it would start anew in its place)
            raise SystemExit(f"error: {key} in {out} has no checkpoint to go on from to {run['frames']:,} "
                             f"frames; a run of the new budget from the start is another run: give it --tag")
    print(f"{len(runs)} runs in {out}: {len(runs) - len(todo)} already finished, {len(todo)} to run", flush=True)
    done_seconds, done_frames, total_frames = 0.0, 0, sum(r["frames"] for r in todo)
    failures = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(execute, r, out) for r in todo]
        try:
            for i, future in enumerate(as_completed(futures), 1):
                status = future.result()
                if status is None:  # never started: a stop came first
                    continue
                if status["returncode"] in STOPPED:
                    print(f"[{i}/{len(todo)}] {status['key']} stopped (exit {status['returncode']}) after "
                          f"{status['seconds'] / 60:.1f} min in all; it saved its last finished iteration", flush=True)
                    continue
                # the ETA from the runs' own wall time (every segment of a resumed run), not this sitting's
                done_seconds, done_frames = done_seconds + status["seconds"], done_frames + status["frames"]
                eta = done_seconds / done_frames * (total_frames - done_frames) / workers
                outcome = "ok" if status["returncode"] == 0 else f"FAILED (exit {status['returncode']})"
                if status["returncode"] != 0:
                    failures.append(status)
                print(f"[{i}/{len(todo)}] {status['key']} {outcome} in {status['seconds'] / 60:.1f} min; "
                      f"ETA {eta / 3600:.1f} h", flush=True)
        except KeyboardInterrupt:  # Ctrl-C reaches the runs under way too: each saves and stops
            STOPPING.set()  # and the with block waits for them
    if STOPPING.is_set():
        print("stopped; the same command continues each cut run from its checkpoint", file=sys.stderr)
        sys.exit(130)
    if failures:
        print(f"\n{len(failures)} of {len(todo)} runs FAILED:", file=sys.stderr)
        for status in failures:
            print(f"  {status['key']} (exit {status['returncode']}): see {out / 'logs' / (status['key'] + '.log')}",
                  file=sys.stderr)
        sys.exit(1)
    print(f"all {len(runs)} runs finished; next: python benchmarks/report.py --name {out.name}")


if __name__ == "__main__":
    main()
