"""The benchmark tools: the grid runner reports failures and resumes, the report reads event files
and computes what it says it does, the random agent and the throughput table come out of real runs."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from conftest import ROOT, run_script

BENCH = ROOT / "benchmarks"
TINY_RUN = ["--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "1",
            "--obs-norm-steps", "64", "--obs-norm-envs", "2"]


def bench(tool, *args, timeout=300):
    """`python benchmarks/TOOL.py ARGS`: forked from the tests' warm process (conftest.run_script) when the
    tool does its work in-process, a new interpreter when it starts the scripts and watches over them."""
    return run_script(f"benchmarks/{tool}", *args, timeout=timeout, fresh=tool in ("run", "same_numbers"))


def test_runner_reports_a_failed_run_and_resumes_without_redoing_finished_ones(tmp_path):
    grid = ["--name", "t", "--results-dir", str(tmp_path), "--scripts", "curiosity_rf", "--seeds", "1",
            "--env-ids", "BreakoutNoFrameskip-v4", "NotAGameNoFrameskip-v4", "--frames", str(4 * 128), "--", *TINY_RUN]
    result = bench("run", *grid)
    assert result.returncode == 1
    assert "1 of 2 runs FAILED" in result.stderr
    assert "curiosity_rf__NotAGameNoFrameskip-v4__s1 (exit 1)" in result.stderr
    out = tmp_path / "t"
    ok = json.loads((out / "status" / "curiosity_rf__BreakoutNoFrameskip-v4__s1.json").read_text())
    assert ok["returncode"] == 0 and "--total-timesteps" in ok["command"]
    log = (out / "logs" / "curiosity_rf__BreakoutNoFrameskip-v4__s1.log").read_text()
    assert "iter 2/2" in log
    assert log.startswith("python curiosity_rf.py --env-id BreakoutNoFrameskip-v4 ")  # run from the repository
    assert str(ROOT) not in log and sys.executable not in log  # no path of the machine that ran it
    assert "names no Atari game" in (out / "logs" / "curiosity_rf__NotAGameNoFrameskip-v4__s1.log").read_text()
    assert list((out / "runs" / "curiosity_rf__BreakoutNoFrameskip-v4__s1").glob("*/events.out.tfevents.*"))

    again = bench("run", *grid)
    assert "2 runs in" in again.stdout and "1 already finished, 1 to run" in again.stdout
    assert again.returncode == 1


def test_runner_continues_a_cut_short_run_from_its_checkpoint(tmp_path):
    grid = ["--name", "t", "--results-dir", str(tmp_path), "--scripts", "curiosity_rf", "--seeds", "1",
            "--env-ids", "BreakoutNoFrameskip-v4", "--frames", str(4 * 256), "--", *TINY_RUN]
    out, key = tmp_path / "t", "curiosity_rf__BreakoutNoFrameskip-v4__s1"
    # As if the runner had died after two of the four iterations: a checkpoint, and no status
    cut = subprocess.run([sys.executable, str(ROOT / "curiosity_rf.py"), "--env-id", "BreakoutNoFrameskip-v4", "--seed", "1",
                          "--total-timesteps", "128", "--exp-name", "curiosity_rf", "--log-dir", str(out / "runs" / key),
                          *TINY_RUN], capture_output=True, text=True, cwd=ROOT)
    assert cut.returncode == 0, cut.stderr
    result = bench("run", *grid)
    assert result.returncode == 0, result.stderr
    log = (out / "logs" / f"{key}.log").read_text()
    assert "--resume" in log and "resuming after iteration 2 (step 128)" in log
    assert "iter 3/4" in log and "iter 1/4" not in log
    status = json.loads((out / "status" / f"{key}.json").read_text())
    assert "--resume" not in status["command"] and "--resume" in status["executed"]
    again = bench("run", *grid)
    assert "1 already finished, 0 to run" in again.stdout

    # a larger budget continues the finished run from its checkpoint; a smaller one it has passed already
    at = grid.index("--frames") + 1
    budget = lambda frames: [*grid[:at], str(frames), *grid[at + 1:]]  # noqa: E731
    extended = bench("run", *budget(4 * 384))
    assert extended.returncode == 0 and "0 already finished, 1 to run" in extended.stdout, extended.stderr
    log = (out / "logs" / f"{key}.log").read_text()
    assert "resuming after iteration 4 (step 256)" in log and "iter 6/6" in log and "iter 1/" not in log
    longer = json.loads((out / "status" / f"{key}.json").read_text())
    assert longer["frames"] == 4 * 384 and longer["seconds"] > status["seconds"]
    assert longer["command"] == [*status["command"][:7], "384", *status["command"][8:]]  # --total-timesteps
    again = bench("run", *budget(4 * 256))  # the grid it was first: finished, past its budget
    assert again.returncode == 0 and "1 already finished, 0 to run" in again.stdout
    cut = {**longer, "returncode": 130}  # as if stopped before the larger budget: a smaller one is not it
    (out / "status" / f"{key}.json").write_text(json.dumps(cut))
    refused = bench("run", *budget(4 * 128))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (f"error: {key} in {out} was given 1,536 frames, not 512; a smaller "
                                      "budget is another run: give it --tag or --name")
    assert json.loads((out / "status" / f"{key}.json").read_text()) == cut
    (checkpoint,) = (out / "runs" / key).glob("*/checkpoint.pt")
    checkpoint.unlink()  # gone (a run copied without it): a larger budget would start anew in its place
    refused = bench("run", *budget(4 * 512))
    assert refused.returncode == 1 and refused.stderr.strip() == (
        f"error: {key} in {out} has no checkpoint to go on from to 2,048 frames; a run of the new budget "
        "from the start is another run: give it --tag")
    assert json.loads((out / "status" / f"{key}.json").read_text()) == cut
    assert list((out / "runs" / key).glob("*/events.out.tfevents.*"))  # its events kept


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a command started with & by a script


def test_a_stopped_run_stops_the_grid_after_it_saves_and_the_same_command_goes_on(tmp_path):
    """Stopped twice, as a user would: Ctrl-C in the terminal (the runner and the run under way), then,
    with the runner started again in the background, SIGINT to the run alone; each time the grid stops
    after the run saves, and the same command then finishes the grid (one grid for both: 21-27 s each apart)."""
    grid = ["--name", "t", "--results-dir", str(tmp_path), "--scripts", "curiosity_rf", "--seeds", "1",
            "--env-ids", "BreakoutNoFrameskip-v4", "PongNoFrameskip-v4", "--frames", str(4 * 64 * 8), "--",
            *TINY_RUN]
    out, key = tmp_path / "t", "curiosity_rf__BreakoutNoFrameskip-v4__s1"
    log, seconds = out / "logs" / f"{key}.log", []
    for who in ("Ctrl-C in a terminal", "SIGINT to the run, the runner in the background"):
        terminal, logged = who.startswith("Ctrl-C"), len(log.read_text()) if log.exists() else 0
        runner = subprocess.Popen([sys.executable, str(BENCH / "run.py"), *grid], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
                                  preexec_fn=None if terminal else ignore_sigint)
        deadline = time.time() + 120  # this segment's second iteration logged (the first: "iter 2/8")
        while not (log.exists() and log.read_text()[logged:].count("\niter ") >= 2) and time.time() < deadline:
            time.sleep(0.2)
        if terminal:
            os.killpg(runner.pid, signal.SIGINT)  # the runner and the run under way
        else:
            (lock,) = (out / "runs" / key).glob("*/.lock")  # holds the run's process id
            os.kill(int(lock.read_text()), signal.SIGINT)
        stdout, stderr = runner.communicate(timeout=120)
        assert runner.returncode == 130, (who, stderr)
        assert "the same command continues" in stderr and "Traceback" not in stderr and "FAILED" not in stdout
        if not terminal:  # (Ctrl-C interrupts the runner's own loop before it reports)
            assert f"{key} stopped (exit 130)" in stdout
        assert not (out / "logs" / "curiosity_rf__PongNoFrameskip-v4__s1.log").exists()  # no next run started
        stopped = json.loads((out / "status" / f"{key}.json").read_text())
        assert stopped["returncode"] == 130 and list((out / "runs" / key).glob("*/checkpoint.pt"))
        seconds.append(stopped["seconds"])
    again = bench("run", *grid)
    assert again.returncode == 0, again.stderr
    assert log.read_text().count("resuming after iteration") == 2 and "iter 8/8" in log.read_text()
    status = json.loads((out / "status" / f"{key}.json").read_text())
    assert status["seconds"] > seconds[1] > seconds[0]  # wall time over all three segments
    ((here, total),) = status["machines"].items()  # all segments on this machine, named as the README does
    assert here.startswith(first_cpu_model()) and total == pytest.approx(status["seconds"], abs=0.2)


def first_cpu_model():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")


def test_a_run_tagged_on_the_command_line_keeps_its_own_key_and_only_picks_it(tmp_path):
    grid = ["--name", "t", "--results-dir", str(tmp_path), "--scripts", "curiosity_rf", "--seeds", "1",
            "--env-ids", "BreakoutNoFrameskip-v4", "PongNoFrameskip-v4", "--frames", str(4 * 64), "--tag", "small",
            "--only", "Breakout", "--", *TINY_RUN]
    result = bench("run", *grid)
    assert result.returncode == 0, result.stderr
    assert "1 runs in" in result.stdout  # Pong left out by --only
    key = "curiosity_rf__BreakoutNoFrameskip-v4__s1__small"
    assert json.loads((tmp_path / "t" / "status" / f"{key}.json").read_text())["returncode"] == 0
    assert [p.name for p in (tmp_path / "t" / "runs").iterdir()] == [key]


def test_a_run_writes_its_status_even_if_the_status_folder_went_away_while_it_ran(tmp_path):
    sys.path.insert(0, str(BENCH))
    import run

    (tmp_path / "logs").mkdir()  # no status/: as after a `git rm` of its last file while a run went on
    spec = dict(script="curiosity_rf", env_id="BreakoutNoFrameskip-v4", seed=1, frames=4 * 64, extra=TINY_RUN)
    status = run.execute(spec, tmp_path)
    assert status["returncode"] == 0
    written = tmp_path / "status" / "curiosity_rf__BreakoutNoFrameskip-v4__s1.json"
    assert json.loads(written.read_text()) == status


def test_report_reads_event_files_and_writes_curves_and_tables(tmp_path):
    runs = tmp_path / "r" / "runs"
    rng = np.random.default_rng(0)
    expected = {}
    for script in ("curiosity_rf", "curiosity_idf"):
        finals = []
        for seed in (1, 2):
            writer = SummaryWriter(runs / f"{script}__PongNoFrameskip-v4__s{seed}" / "tb")
            values = np.linspace(-21, 0, 20) + rng.normal(size=20)
            for i, v in enumerate(values):
                writer.add_scalar("charts/episodic_return", v, (i + 1) * 1000)
                writer.add_scalar("charts/episodic_length", 100 * seed + 2 * i, (i + 1) * 1000)
            writer.close()
            finals.append(values[-2:].mean())  # last 10% of 20 points
        expected[script] = np.mean(finals)
    writer = SummaryWriter(runs / "curiosity_rf__PongNoFrameskip-v4__s3" / "tb")  # a third seed, under way
    for i in range(10):
        writer.add_scalar("charts/episodic_return", 100.0, (i + 1) * 1000)  # it would move the mean, were it in
    writer.close()
    random_csv = tmp_path / "random.csv"
    random_csv.write_text("env_id,episodes,mean_return,std_return,mean_length\nPongNoFrameskip-v4,10,-20.7,0.5,800\n")
    (tmp_path / "r" / "status").mkdir()
    machines = ({"CPU A": 1800}, {"CPU A": 600, "CPU B": 3000})  # seed 2 continued on another machine
    machines += ({"CPU A": 900},)
    for seed, seconds in ((1, 1800), (2, 3600), (3, 900)):  # run.py's status files: the wall time of each run
        (tmp_path / "r" / "status" / f"curiosity_rf__PongNoFrameskip-v4__s{seed}.json").write_text(json.dumps(
            dict(script="curiosity_rf", env_id="PongNoFrameskip-v4", seed=seed, tag=None, seconds=seconds,
                 machines=machines[seed - 1])))
    result = bench("report", "--name", "r", "--results-dir", str(tmp_path), "--random-agent", str(random_csv))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "r" / "report.csv") as f:
        rows = {row["script"]: row for row in csv.DictReader(f)}
    for script, final in expected.items():
        assert float(rows[script]["final_return"]) == np.round(final, 2)
        assert rows[script]["seeds"] == "2" and rows[script]["frames"] == str(4 * 20000)
        assert rows[script]["random_agent"] == "-20.7"
        # the paper's Pong curve (-13.4 at 10M frames for RF, -13.6 for IDF) from the random agent's -20.7 at 0
        paper_10m = {"curiosity_rf": -13.4, "curiosity_idf": -13.6}[script]
        paper = -20.7 + (paper_10m + 20.7) * 80_000 / 1e7
        assert float(rows[script]["paper_at_budget"]) == round(paper, 2)
        assert float(rows[script]["normalised"]) == round((final + 20.7) / (paper + 20.7), 2)
        assert rows[script]["final_length"] == "187" and rows[script]["random_length"] == "800"  # of 137 and 237
        assert rows[script]["tag"] == ""
    assert rows["curiosity_rf"]["hours"] == "1.5" and rows["curiosity_idf"]["hours"] == ""  # two seeds' runs
    assert rows["curiosity_rf"]["machine"] == "CPU A + CPU B" and rows["curiosity_idf"]["machine"] == ""
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| curiosity_rf |  | PongNoFrameskip-v4 | 2 | 80,000 |" in report and "| -20.7 (800) |" in report
    assert "| 1.5 | CPU A + CPU B |" in report
    assert "PongNoFrameskip-v4 at 80,000 frames:" in report  # the order of the two variants is judged
    assert "(under way, or cut short): curiosity_rf on PongNoFrameskip-v4, seed 3 at 40,000 frames." in report
    assert (tmp_path / "r" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _report():
    sys.path.insert(0, str(BENCH))
    import report

    return report


def test_status_files_and_random_agent_rows_name_an_env_as_the_runs_do(tmp_path):
    """The run keys make "/" and ":" a dash; the rows give ALE's "ALE/" back: every id the scripts take is
    named one way by runs, status files (wall time) and the random agent's CSV."""
    report = _report()
    for env_id, key in (("ALE/Pong-v5", "ALE-Pong-v5"), ("benchmarks.worlds:Maze-v0", "benchmarks.worlds-Maze-v0"),
                        ("PongNoFrameskip-v4", "PongNoFrameskip-v4")):
        writer = SummaryWriter(tmp_path / "runs" / f"curiosity_rf__{key}__s1" / "tb")
        writer.add_scalar("charts/episodic_return", 1.0, 100)
        writer.close()
        (tmp_path / "status").mkdir(exist_ok=True)
        (tmp_path / "status" / f"curiosity_rf__{key}__s1.json").write_text(json.dumps(
            dict(script="curiosity_rf", env_id=env_id, seed=1, tag=None, seconds=3600, machines={"CPU A": 3600})))
        assert report.env_of(env_id) == report.env_of(key)
    runs = report.read_runs(tmp_path / "runs")
    assert set(runs) == set(report.wall_hours(tmp_path / "status")) == {
        ("curiosity_rf", "ALE/Pong-v5"), ("curiosity_rf", "benchmarks.worlds-Maze-v0"),
        ("curiosity_rf", "PongNoFrameskip-v4")}


def test_paper_curve_is_interpolated_from_the_random_agent_and_stops_at_its_last_point():
    report = _report()
    curve = report.read_paper_curves(BENCH / "paper_curves.csv")[("Breakout", "curiosity_rf")]
    # the fine reading up to 50M frames, then the eye reading's 100M and 400M points
    assert curve[0].tolist() == [1e7, 3e7, 5e7, 1e8, 4e8] and curve[1].tolist() == [23, 58, 129, 180, 180]
    assert report.paper_at(curve, 2e6, random_score=1.4) == pytest.approx(1.4 + (23 - 1.4) * 0.2)
    assert report.paper_at(curve, 2e7, random_score=1.4) == pytest.approx(40.5)  # halfway from 23 to 58
    assert report.paper_at(curve, 2e6) is None  # below 10M frames only with a random agent to start from
    assert report.paper_at(curve, 5e8, random_score=1.4) is None  # past the paper's budget
    assert report.game_of("BreakoutNoFrameskip-v4") == report.game_of("ALE/Breakout-v5") == "Breakout"
    rows = report.read_paper_curves(BENCH / "paper_curves.csv")
    assert len(rows) == 20  # the spec's 20 curves; RF's and IDF's with the fine reading's 30M point
    assert {key: len(frames) for key, (frames, _) in rows.items()} == {
        key: 5 if key[1] in ("curiosity_rf", "curiosity_idf") else 4 for key in rows}
    vae = rows[("Breakout", "curiosity_vae")]  # no fine reading: the eye reading alone
    assert vae[0].tolist() == [1e7, 5e7, 1e8, 4e8] and vae[1].tolist() == [10, 25, 50, 200]


def test_a_seed_short_of_its_groups_longest_is_left_out_but_a_sparsely_logged_finished_one_is_not():
    report = _report()
    every = np.arange(1, 153) * 65536.0  # 152 iterations of 128 x 128 steps, 10M frames: a point each
    maze = np.arange(8, 123, 8) * 16384.0  # a maze run logs where episodes end: every 8 iterations of 4096
    atari, world = ("curiosity_rf", "BreakoutNoFrameskip-v4"), ("curiosity_rf", "benchmarks.worlds-Maze-v0")
    runs = {atari: {1: (every, every), 2: (every[:25], every[:25])},
            world: {1: (maze, maze), 2: (maze[:-1], maze[:-1])}}  # 7% short, one logging gap: finished
    kept, shorter = report.longest_seeds(runs)
    assert {key: sorted(seeds) for key, seeds in kept.items()} == {atari: [1], world: [1, 2]}
    assert shorter == [(*atari, 2, 25 * 65536.0)]  # under way at 1.6M frames


def test_a_run_past_the_papers_points_is_scored_at_each_as_if_it_had_stopped_there():
    report = _report()
    curves = report.read_paper_curves(BENCH / "paper_curves.csv")  # RF, Breakout: 23, 58, 129 at 10, 30, 50M
    frames = np.arange(1, 101) * 5e5  # 100 logged points to 50M frames, a score of 1 a million frames
    key = ("curiosity_rf__float32", "BreakoutNoFrameskip-v4")
    runs = {key: {1: (frames, frames / 1e6), 2: (frames, frames / 1e6 + 2)}}
    episodes = {key: {1: (frames, np.where(frames == 1e7, 2.0, 1.0)), 2: (frames, np.ones(100))}}
    lines = report.paper_points(runs, {"BreakoutNoFrameskip-v4": {"mean_return": "1.4"}}, curves, episodes)
    # at 10M the points at 9.5M and 10M (two episodes ended at 10M for seed 1): 9.83 and 11.75
    assert [line for line in lines if line.startswith("| curiosity_rf")] == [
        "| curiosity_rf | float32 | BreakoutNoFrameskip-v4 | 2 | 10,000,000 | 10.79 +- 0.96 | 23 | 0.43 |",
        "| curiosity_rf | float32 | BreakoutNoFrameskip-v4 | 2 | 30,000,000 | 29.75 +- 1.00 | 58 | 0.50 |",
        "| curiosity_rf | float32 | BreakoutNoFrameskip-v4 | 2 | 50,000,000 | 48.75 +- 1.00 | 129 | 0.37 |"]
    # a 10M-frame run stops at 9.96M: one point, in the main table already, so no table of points
    at_10m = {key: {1: (frames[:20] * 0.996, frames[:20] / 1e6)}}
    assert report.paper_points(at_10m, {}, curves) == []
    # a run stopped at 49.92M (its last whole iteration) has reached 50M; no random agent, no normalised
    cut = {key: {1: (frames * 0.9984, frames / 1e6)}}
    assert report.paper_points(cut, {}, curves)[-1] == \
        "| curiosity_rf | float32 | BreakoutNoFrameskip-v4 | 1 | 50,000,000 | 47.75 +- 0.00 | 129 |  |"


def test_order_check_compares_variants_at_one_budget():
    report = _report()
    assert report.order_matches({"rf": 6.0, "idf": 4.0}, {"rf": 6.1, "idf": 4.1}) is True
    assert report.order_matches({"rf": 0.1, "idf": 4.0}, {"rf": 6.1, "idf": 4.1}) is False
    assert report.order_matches({"rf": 6.0, "pixels": 1.0}, {"rf": 6.1, "pixels": None}) is None  # one comparable
    # Paper scores closer than the reading's error are no order: only the pairs further apart are compared
    assert report.order_matches({"rf": 6.0, "idf": 4.0}, {"rf": 6.1, "idf": 4.1}, tie=2.5) == "tied"
    assert report.order_matches({"rf": 1.0, "idf": 2.0, "vae": 9.0}, {"rf": 6.1, "idf": 5.0, "vae": 0.1},
                                tie=2.0) is False  # rf and idf tie; vae, far below both in the paper, is on top
    assert report.order_matches({"rf": 1.0, "idf": 2.0, "vae": 0.0}, {"rf": 6.1, "idf": 5.0, "vae": 0.1},
                                tie=2.0) is True
    runs = {("curiosity_rf", "BreakoutNoFrameskip-v4"): {1: (np.array([1e6, 2e6]), np.array([1.0, 7.0]))},
            ("curiosity_idf", "BreakoutNoFrameskip-v4"): {1: (np.array([1e6, 2e6]), np.array([1.0, 3.0]))},
            ("curiosity_vae", "BreakoutNoFrameskip-v4"): {1: (np.array([1e6, 5e5]), np.array([1.0, 9.0]))}}
    random_agent = {"BreakoutNoFrameskip-v4": {"mean_return": "1.4"}}
    table, order = report.summarise(runs, random_agent, report.read_paper_curves(BENCH / "paper_curves.csv"), {})
    rf = next(r for r in table if r["script"] == "curiosity_rf")
    assert rf["paper_at_budget"] == 5.72 and rf["normalised"] == round((7.0 - 1.4) / (5.72 - 1.4), 2)
    # At 2M frames the paper's RF and IDF (5.7 and 3.7, interpolated) are closer than 3% of Breakout's panel
    # (its top: 200): no order to match. The VAE ran to another budget and is not compared with them
    assert order == {("BreakoutNoFrameskip-v4", 500_000, ""): None, ("BreakoutNoFrameskip-v4", 2_000_000, ""): "tied"}
    at_10m = {key: {1: (np.array([1e6, 1e7]), seeds[1][1])} for key, seeds in list(runs.items())[:2]}
    assert report.summarise(at_10m, random_agent, report.read_paper_curves(BENCH / "paper_curves.csv"), {})[1] == {
        ("BreakoutNoFrameskip-v4", 10_000_000, ""): True}  # 23 against 13: further apart than 6


def test_the_cpu10m_preset_runs_in_the_precision_the_cpu_does_fast_and_says_which_in_its_keys():
    sys.path.insert(0, str(BENCH))
    import run

    order = ["curiosity_rf__BreakoutNoFrameskip-v4", "curiosity_idf__BreakoutNoFrameskip-v4",
             "curiosity_rf__SpaceInvadersNoFrameskip-v4", "curiosity_idf__SpaceInvadersNoFrameskip-v4",
             "curiosity_rf__SeaquestNoFrameskip-v4", "curiosity_rf__BeamRiderNoFrameskip-v4",
             "curiosity_vae__BreakoutNoFrameskip-v4", "curiosity_pixels__BreakoutNoFrameskip-v4"]
    bf16 = run.grid(**run.cpu10m(bf16=True))
    assert [run.run_key(r) for r in bf16] == [f"{key}__s1__bf16" for key in order] + [
        "curiosity_rf__BreakoutNoFrameskip-v4__s1__float32"]  # bfloat16's float32 control, last
    assert all("--bf16" in r["extra"] for r in bf16[:-1]) and bf16[-1]["extra"] == []
    assert [r["frames"] for r in bf16] == [10_000_000] * 6 + [2_000_000] * 2 + [10_000_000]
    assert all(r["extra"][:4] == ["--num-envs", "32", "--num-minibatches", "4"] for r in bf16[6:8])
    assert all("--num-envs" not in r["extra"] for r in bf16[:6])  # the paper's 128 envs, the scripts' default
    float32 = run.grid(**run.cpu10m(bf16=False))
    assert [run.run_key(r) for r in float32] == [f"{key}__s1__float32" for key in order]  # no control needed
    assert not any("--bf16" in r["extra"] for r in float32)
    assert run.grid(**run.PRESETS["cpu10m"]()) == run.grid(**run.cpu10m(run.bf16_is_fast()))
    # seeds 2 and 3 of RF on Breakout and IDF on SpaceInvaders, and RF on Breakout to 50M: the same runs as
    # cpu10m's but their seed or budget, in the precision this CPU does fast
    tag = "bf16" if run.bf16_is_fast() else "float32"
    seeds = run.grid(**run.PRESETS["cpu10m-seeds"]())
    assert [run.run_key(r) for r in seeds] == [f"{key}__s{seed}__{tag}" for key in (order[0], order[3])
                                               for seed in (2, 3)]
    # (keyed by tag too: with bfloat16, cpu10m also runs RF on Breakout in float32, its control)
    first = {(r["script"], r["env_id"], r["tag"]): r for r in run.grid(**run.PRESETS["cpu10m"]())}
    assert all({**r, "seed": 1} == first[r["script"], r["env_id"], r["tag"]] for r in seeds)
    (longer,) = run.grid(**run.PRESETS["cpu50m"]())
    assert longer == {**first["curiosity_rf", "BreakoutNoFrameskip-v4", tag], "seed": 2, "frames": 50_000_000}
    assert run.run_key(longer) == run.run_key(seeds[0])  # cpu10m-seeds' seed 2, so its 10M frames can be reused


def test_a_tagged_run_has_its_scripts_paper_curve_and_is_ranked_only_among_runs_of_its_tag():
    report = _report()
    runs = {(variant, "BreakoutNoFrameskip-v4"): {1: (np.array([1e6, 1e7]), np.array([1.0, y]))}
            for variant, y in (("curiosity_rf__bf16", 7.0), ("curiosity_idf__bf16", 5.0),
                               ("curiosity_rf__float32", 3.0))}
    table, order = report.summarise(runs, {"BreakoutNoFrameskip-v4": {"mean_return": "1.4"}},
                                    report.read_paper_curves(BENCH / "paper_curves.csv"), {})
    control = next(r for r in table if r["tag"] == "float32")
    assert control["script"] == "curiosity_rf" and control["paper_at_budget"] == 23.0  # RF's curve
    assert control["normalised"] == round((3.0 - 1.4) / (23.0 - 1.4), 2)
    # RF above IDF in bfloat16, as in the paper at 10M frames; the float32 control is ranked against nothing
    assert order == {("BreakoutNoFrameskip-v4", 10_000_000, "bf16"): True,
                     ("BreakoutNoFrameskip-v4", 10_000_000, "float32"): None}


def test_curves_carry_the_papers_points_and_the_random_agent_at_gpu_budgets():
    report = _report()
    frames = np.linspace(1e6, 6e7, 30)
    runs = {("curiosity_rf", "BreakoutNoFrameskip-v4"): {1: (frames, np.linspace(1, 100, 30))},
            ("curiosity_idf", "BreakoutNoFrameskip-v4"): {1: (frames, np.linspace(1, 40, 30))}}
    fig = report.plot({"return": runs}, {"BreakoutNoFrameskip-v4": {"mean_return": "1.4"}},
                      report.read_paper_curves(BENCH / "paper_curves.csv"))
    (ax,) = [a for a in fig.axes if a.get_lines()]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["paper: rf"].get_xdata().tolist() == [10, 30, 50]  # the points within 60M frames, in millions
    assert lines["paper: rf"].get_ydata().tolist() == [23, 58, 129]
    assert lines["paper: idf"].get_ydata().tolist() == [13, 14, 33]
    budget = [line for line in ax.get_lines() if "at our budget" in line.get_label()]
    assert sorted(line.get_ydata()[0] for line in budget) == pytest.approx([33 + 37 * 0.2, 129 + 51 * 0.2])  # at 60M
    assert all(line.get_xdata()[0] == pytest.approx(60) for line in budget)
    assert lines["random agent"].get_ydata()[0] == 1.4
    assert ax.get_xlim()[1] == pytest.approx(1.08 * 60)  # the axis spans our frames, not the paper's 400M


def report_rows(tmp_path, name: str, random_agent: str) -> tuple[list, Path]:
    """report.py on the runs under tmp_path/name, with a random-agent CSV of one extra column and one row
    (`random_agent`: that column's name, a newline, the row); its report.csv's rows, and the CSV's path."""
    random_csv = tmp_path / "random.csv"
    random_csv.write_text(f"env_id,episodes,mean_return,std_return,mean_length,{random_agent}\n")
    result = bench("report", "--name", name, "--results-dir", str(tmp_path), "--random-agent", str(random_csv))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / name / "report.csv") as f:
        return list(csv.DictReader(f)), random_csv


def test_two_player_pong_is_reported_by_ball_returns_and_episode_length_beside_the_random_policy(tmp_path):
    runs = tmp_path / "r" / "runs"
    writer = SummaryWriter(runs / "curiosity_rf__Pong-Atari2600-v0__s1" / "tb")
    for i in range(20):  # the game's score is always 0: the reward is removed
        for tag, value in (("episodic_return", 0), ("ball_returns", 2 + i), ("episodic_length", 500 + 10 * i)):
            writer.add_scalar(f"charts/{tag}", value, (i + 1) * 1000)
    writer.close()
    (row,), random_csv = report_rows(tmp_path, "r", "mean_ball_returns\nPong-Atari2600-v0,16,0.0,0.0,600.5,3.25")
    assert row["score"] == "ball_returns" and row["final_return"] == "20.5"  # the last 2 of 20 points: 20, 21
    assert row["final_length"] == "685" and row["random_agent"] == "3.25" and row["random_length"] == "600.5"
    assert row["paper_at_budget"] == row["normalised"] == ""  # the paper gives no numbers for two-player Pong
    assert "| 20.5 +- 0.0 ball returns | 685 | 3.25 (600) |" in (tmp_path / "r" / "report.md").read_text()
    report = _report()
    by_metric = {metric: report.read_runs(runs, tag) for metric, tag in report.TAGS.items()}
    fig = report.plot(by_metric, report.read_csv(random_csv, "env_id"), {})
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_ylabel() for ax in axes] == ["ball returns per episode", "episode length (agent steps)"]
    random = [[line.get_ydata()[0] for line in ax.get_lines() if line.get_label() == "random agent"] for ax in axes]
    assert random == [[3.25], [600.5]]


def test_the_maze_is_reported_by_its_success_rate_when_it_first_reaches_half_and_the_tvs_pull(tmp_path):
    runs = tmp_path / "m" / "runs"
    success = {"curiosity_extrinsic_mix__benchmarks.worlds-Maze-v0__s1__goal_only": lambda i: 0.0,
               "curiosity_idf__benchmarks.worlds-MazeTV-v0__s1__mix": lambda i: min(1.0, i / 50),
               "curiosity_extrinsic_mix__benchmarks.worlds-Maze-v0__s1": lambda i: i % 2}
    for key, of in success.items():
        writer = SummaryWriter(runs / key / "tb")
        for i in range(100):  # 40,000 agent steps a logged point
            writer.add_scalar("charts/goal_reached", of(i), (i + 1) * 40_000)
            writer.add_scalar("charts/episodic_return", of(i), (i + 1) * 40_000)
            if key.endswith("Maze-v0__s1"):  # one episode reaching the goal early, then 31 cut at the time limit
                writer.add_scalar("charts/episodes", 1 if i % 2 else 31, (i + 1) * 40_000)
                writer.add_scalar("charts/rooms_visited", 9 if i % 2 else 3, (i + 1) * 40_000)
                writer.add_scalar("charts/doorways_to_goal", 0 if i % 2 else 3, (i + 1) * 40_000)
            if "TV" in key:
                writer.add_scalar("charts/rooms_visited", 4, (i + 1) * 40_000)
                writer.add_scalar("charts/doorways_to_goal", 1, (i + 1) * 40_000)
                writer.add_scalar("charts/tv_action_share", 0.3, (i + 1) * 40_000)
                writer.add_scalar("charts/near_tv_share", 0.5, (i + 1) * 40_000)
        writer.close()
    (tmp_path / "m" / "status").mkdir()
    (tmp_path / "m" / "status" / "curiosity_extrinsic_mix__benchmarks.worlds-Maze-v0__s1__goal_only.json").write_text(
        json.dumps(dict(script="curiosity_extrinsic_mix", env_id="benchmarks.worlds:Maze-v0", seed=1,
                        tag="goal_only", seconds=4731.2, machines={"CPU A": 4731.2})))
    rows, _ = report_rows(tmp_path, "m", "mean_goal_reached,mean_rooms_visited,mean_tv_action_share,"
                                         "mean_near_tv_share,mean_doorways_to_goal\n"
                                         "benchmarks.worlds:Maze-v0,512,0.0,0.0,1000.0,0.0,2.5,,,4.5\n"
                                         "benchmarks.worlds:MazeTV-v0,32,0.0,0.0,1000.0,0.0,,0.2,0.22,")
    rows_list, rows = rows, {row["env_id"]: row for row in rows if row["tag"] or "TV" in row["env_id"]}
    assert rows["benchmarks.worlds-Maze-v0"]["hours"] == "1.31"  # the status file's id, as the run's key spells it
    assert rows["benchmarks.worlds-Maze-v0"]["machine"] == "CPU A"
    assert {row["score"] for row in rows.values()} == {"goal_reached"}
    assert rows["benchmarks.worlds-Maze-v0"]["final_return"] == "0.0"
    assert rows["benchmarks.worlds-Maze-v0"]["random_agent"] == "0.0"  # the CSV's id, as the run's key spells it
    assert rows["benchmarks.worlds-MazeTV-v0"]["final_return"] == "1.0"
    mix = [row for row in rows_list if row["env_id"] == "benchmarks.worlds-Maze-v0" and row["tag"] == ""]
    assert mix[0]["final_return"] == "0.03"  # 5 of 160 episodes, not half of the 10 points
    text = (tmp_path / "m" / "report.md").read_text()
    row = lambda *cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    script = "curiosity_extrinsic_mix"
    maze, maze_tv = "benchmarks.worlds-Maze-v0", "benchmarks.worlds-MazeTV-v0"
    # a run that predates a counter has its cell blank (""); over the last 10 points, rooms (9 + 31 * 3) / 32,
    # closest to the goal (0 + 31 * 3) / 32
    assert row(script, "goal_only", maze, "1", "0.000 +- 0.000", "never", "", "", "", "") in text
    assert row("random agent", "", maze, "512 episodes", "0.000", "never", "2.50", "4.50", "", "") in text
    assert row(script, "", maze, "1", "0.031 +- 0.000", "never", "3.19", "2.91", "", "") in text
    assert row("random agent", "", maze_tv, "32 episodes", "0.000", "never", "", "", "0.200", "0.220") in text
    # success i / 50 at step 40,000 (i + 1), frames 160,000 (i + 1): its trailing mean over 10 points first
    # reaches 0.5 over points 21-30, at point 30: 4.96M frames
    line = [l for l in text.splitlines() if "| curiosity_idf | mix | benchmarks.worlds-MazeTV-v0 |" in l][-1]
    cells = [c.strip() for c in line.split("|")]
    assert cells[5] == "1.000 +- 0.000" and cells[7:11] == ["4.00", "1.00", "0.300", "0.500"]
    assert cells[6] == "4,960,000"
    report = _report()
    by_metric = {metric: report.read_runs(runs, tag) for metric, tag in report.TAGS.items()}
    axes = [ax for ax in report.plot(by_metric, {}, {}).axes if ax.get_lines()]
    rooms, closest = "rooms entered per episode (of 9)", "closest to the goal (doorways)"
    assert [ax.get_ylabel() for ax in axes] == ["success (goal reached)", rooms, closest] * 2 + [
        "share of steps switching the TV", "share of steps near the TV"]
    (mix,) = [line for line in axes[0].get_lines() if line.get_label() == "extrinsic_mix (n=1)"]
    assert np.allclose(mix.get_ydata(), 5 / 160, atol=0.005)  # every episode once, not a jump at each success
    (rooms,) = [line for line in axes[1].get_lines() if line.get_label() == "extrinsic_mix (n=1)"]
    assert np.allclose(rooms.get_ydata(), 102 / 32, atol=0.02)  # the goal-only run logged no rooms: no line
    # a variant's colour is its own in every panel, whatever else the panel holds: IDF, third of the three
    # variants, alone in the TV world's panels
    from matplotlib.colors import to_hex

    idf = [to_hex(line.get_color()) for ax in axes[3:] for line in ax.get_lines()
           if line.get_label() == "idf__mix (n=1)"]
    assert to_hex(rooms.get_color()) == to_hex(mix.get_color()) == to_hex("C0") and idf == [to_hex("C2")] * 5


def test_report_without_runs_says_what_to_do(tmp_path):
    result = bench("report", "--name", "nothing", "--results-dir", str(tmp_path))
    assert result.returncode != 0 and "run benchmarks/run.py first" in result.stderr
    assert "Traceback" not in result.stderr


def test_random_agent_plays_whole_episodes_and_repeats_with_a_seed():
    sys.path.insert(0, str(BENCH))
    from random_agent import random_agent

    returns, lengths, counters = random_agent("BreakoutNoFrameskip-v4", episodes=4, num_envs=2, seed=0)
    assert len(returns) == len(lengths) == 4
    assert (returns >= 0).all() and (lengths > 20).all()  # a random Breakout episode loses 5 balls
    again = random_agent("BreakoutNoFrameskip-v4", episodes=4, num_envs=2, seed=0)
    assert np.array_equal(returns, again[0]) and np.array_equal(lengths, again[1]) and counters == {}


def test_random_agent_rows_keep_a_rare_event_readable():
    sys.path.insert(0, str(BENCH))
    from random_agent import csv_row

    goal = np.zeros(128)
    goal[5] = 1.0  # the goal in 1 of 128 episodes
    row = csv_row("benchmarks.worlds:MazeTV-v0", goal * 0.9, np.full(128, 999.8), {"goal_reached": goal})
    assert row["episodes"] == 128 and row["mean_goal_reached"] == 0.0078 and row["mean_return"] == 0.007
    assert row["std_return"] == round(float((goal * 0.9).std()), 4) and row["mean_length"] == 999.8


def test_random_agent_replaces_its_games_rows_and_keeps_the_others(tmp_path):
    out = tmp_path / "random.csv"
    out.write_text("env_id,episodes,mean_return,std_return,mean_length,mean_ball_returns\n"
                   "Pong-Atari2600-v0,16,0.0,0.0,600.5,3.25\nBreakoutNoFrameskip-v4,1,99.0,0.0,1.0,\n")
    result = bench("random_agent", "--env-ids", "BreakoutNoFrameskip-v4", "--episodes", "2",
                   "--num-envs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with open(out) as f:
        rows = {row["env_id"]: row for row in csv.DictReader(f)}
    assert rows["Pong-Atari2600-v0"]["mean_ball_returns"] == "3.25"  # kept
    breakout = rows["BreakoutNoFrameskip-v4"]  # replaced
    assert breakout["episodes"] == "2" and float(breakout["mean_length"]) > 20


def test_throughput_prints_a_table_with_the_ratio():
    result = bench("throughput", "--scripts", "curiosity_rf", "--num-envs", "4", "--num-steps", "16",
                   "--iterations", "2", "--", "--num-minibatches", "2", "--obs-norm-steps", "64",
                   "--obs-norm-envs", "2")
    assert result.returncode == 0, result.stderr
    row = [line for line in result.stdout.splitlines() if line.startswith("| curiosity_rf")][0]
    env_sps, train_sps, ratio, seconds, rss, pss = (float(c) for c in row.strip("|").split("|")[1:])
    assert env_sps > train_sps > 0
    assert abs(ratio - train_sps / env_sps) < 2e-3
    assert 0.1 < rss < 8 and 0.05 < pss < 8  # one process: its PSS is its RSS less what it shares


def test_profile_ops_splits_whole_iterations_by_op_and_kind():
    result = bench("profile_ops", "--num-envs", "4", "--num-steps", "16", "--iterations", "2",
                   "--", "--num-minibatches", "2", "--update-epochs", "2", "--obs-norm-envs", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("  seconds: inference") == 3  # the script's own phase lines: 1 + 2 profiled iterations
    seconds = float(out.split("seconds per iteration: ")[1].split()[0])
    kinds = {cells[0]: float(cells[1]) for line in out.splitlines() if line.startswith("| ")
             for cells in [[c.strip() for c in line.strip("|").split("|")]] if len(cells) == 3
             and cells[1] != "s / iteration" and not cells[1].startswith("-")}
    assert kinds["convolution"] > 0 and kinds["matrix product"] > 0 and kinds["optimizer (Adam)"] > 0
    assert abs(sum(kinds.values()) - seconds) < 0.05  # the kinds and the rest add up to the iteration
    ops = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in out.splitlines()
           if line.startswith("| aten::")}
    assert ops["aten::_fused_adam_"] == "4"  # 2 epochs x 2 minibatches: one Adam step each, per iteration
    assert "aten::convolution_backward" in ops


def test_compute_ceiling_counts_every_flop_of_an_rf_iteration():
    """The counter sees inference, the intrinsic reward and all three update epochs, forward and backward:
    the count equals the layer sizes' arithmetic exactly (a multiply-add is 2 FLOPs; biases are not counted)."""
    sys.path.insert(0, str(BENCH))
    from compute_ceiling import flops_per_step

    T = 16
    conv1 = 20 * 20 * 32 * 8 * 8 * 4  # output positions x channels x kernel size
    trunk = conv1 + 9 * 9 * 64 * 4 * 4 * 32 + 7 * 7 * 64 * 3 * 3 * 64 + 3136 * 512
    policy = trunk + 2 * 512 * 512 + 512 * 4 + 512  # multiply-adds of one forward pass; Breakout has 4 actions
    layer = (512 + 4) * 512  # each of the forward model's 10 dense layers sees the action one-hot
    forward_model = 10 * layer
    rollout = 2 * policy * (T + 1) / T + 2 * trunk * (T + 1) / T + 2 * forward_model  # + the bootstrap value
    # Backward: weight gradients everywhere, input gradients except into the frames and the detached features
    update = 3 * (2 * policy + 2 * policy + 2 * (policy - conv1)
                  + 2 * forward_model + 2 * forward_model + 2 * (forward_model - layer))
    assert flops_per_step("curiosity_rf", "BreakoutNoFrameskip-v4", [], num_envs=4, num_steps=T) == rollout + update


def test_reward_sources_reads_each_steps_kind_back_from_the_mazes_running_shares():
    """The maze's info gives shares of the episode so far (near_tv_share = steps near the TV / steps); one
    env, steps near, far, near, near and the episode ends (its last info in final_info), then far, near."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reward_sources import steps_from_shares

    shares = [1 / 1, 1 / 2, 2 / 3, 3 / 4, 0 / 1, 1 / 2]
    episode_steps, dones = [0, 1, 2, 3, 0, 1], [False, False, False, True, False, False]
    count, steps = np.zeros(1), []
    for share, episode_step, done in zip(shares, episode_steps, dones):
        step, count = steps_from_shares(np.array([share]), np.array([episode_step]), np.array([done]), count)
        steps.append(step[0])
    assert steps == [1, 0, 1, 1, 0, 1] and count[0] == 1


def test_reward_sources_divides_each_kind_of_transition_by_the_mean():
    sys.path.insert(0, str(BENCH))
    from reward_sources import reward_sources

    # One env, 12 transitions: a life lost at t=1 (waits 8 steps), a brick hit at t=10, game over at t=11
    table = {"r_int": np.ones((12, 1)), "reward": np.zeros((12, 1)), "done": np.zeros((12, 1), bool),
             "lives_before": np.full((12, 1), 5), "lives_after": np.full((12, 1), 5),
             "episode_step": np.arange(12)[:, None]}
    table["r_int"][[0, 1, 10, 11]] = [[2.0], [10.0], [3.0], [40.0]]
    table["lives_after"][1:] = 4
    table["lives_before"][2:] = 4
    table["reward"][10] = 1.0
    table["done"][11] = True
    sources = reward_sources(table)
    mean = table["r_int"].mean()  # 62 / 12
    assert sources["episode end (next obs: a new episode)"] == (40 / mean, 1)
    assert sources["life lost"] == (10 / mean, 1)
    assert sources["first 3 steps of an episode"] == ((2 + 10 + 1) / 3 / mean, 3)
    assert sources["the 8 steps after a life lost"] == (1 / mean, 8)  # t = 2..9, the life-loss step itself apart
    assert sources["game reward (e.g. a brick hit)"] == (3 / mean, 1)
    assert sources["the rest"][1] == 0  # every transition here is of some kind
    table["phi_move"] = np.arange(12.0)[:, None]  # any column divides the same way
    assert reward_sources(table, column="phi_move")["life lost"] == (1 / 5.5, 1)


def test_precision_agreement_compares_bfloat16_rewards_with_float32s():
    sys.path.insert(0, str(BENCH))
    from reward_sources import precision_agreement

    r32 = np.array([[1.0, 2.0], [3.0, 4.0]])
    agreement = precision_agreement(r32, r32 * 1.1)  # 10% larger everywhere: perfectly correlated
    assert agreement["correlation"] == pytest.approx(1.0)
    assert agreement["mean |bf16 - float32| / mean float32"] == pytest.approx(0.1)
    assert agreement["mean bf16 / mean float32"] == pytest.approx(1.1)
    assert precision_agreement(r32, r32[::-1, ::-1])["correlation"] == pytest.approx(-1.0)


def test_other_seeds_alone_keep_a_presets_whole_chain_and_a_grid_of_ones_own_drops_it():
    sys.path.insert(0, str(BENCH))
    import run

    maze = run.grid(**run.PRESETS["maze"]())
    seed2 = run.grid(**run.with_grid(run.PRESETS["maze"](), seeds=[2]))
    assert [run.run_key(r) for r in seed2] == [run.run_key(r).replace("__s1", "__s2") for r in maze]
    assert [{**r, "seed": 1} for r in seed2] == maze and len(maze) == 7
    both = run.grid(**run.with_grid(run.PRESETS["cpu10m-seeds"](), seeds=[4, 5]))
    assert [(r["script"], r["seed"]) for r in both] == [("curiosity_rf", 4), ("curiosity_rf", 5),
                                                         ("curiosity_idf", 4), ("curiosity_idf", 5)]
    own = run.grid(**run.with_grid(run.PRESETS["maze"](), seeds=[3], frames=1_000_000))
    assert [(r["script"], r["tag"], r["seed"], r["frames"]) for r in own] == [
        ("curiosity_extrinsic_mix", "goal_only", 3, 1_000_000)]  # the preset's first part only


def test_arguments_after_the_dashes_and_the_tag_reach_every_run_of_a_chained_preset_once():
    sys.path.insert(0, str(BENCH))
    import run

    maze = run.grid(**run.PRESETS["maze"]())
    cuda = run.grid(**run.with_extra(run.PRESETS["maze"](), ["--cuda", "False"]))
    # the maze's later parts set their own arguments (the mix's coefficients, pure curiosity's batch)
    assert [r["extra"] for r in cuda] == [[*r["extra"], "--cuda", "False"] for r in maze]
    own = dict(scripts=["curiosity_rf"], env_ids=["PongNoFrameskip-v4"], seeds=[1], frames=1000)  # no extra
    custom = run.grid(**run.with_extra(own, ["--num-envs", "8"]))
    assert [r["extra"] for r in custom] == [["--num-envs", "8"]]
    # --tag keeps such runs apart from the preset's own, in every part (the preset's tag kept before it)
    tagged = run.grid(**run.with_extra(run.PRESETS["maze"](), ["--bf16"], tag="bf16"))
    assert [run.run_key(r) for r in tagged] == [
        run.run_key(r).replace("__goal_only", "__goal_only-bf16").replace("__mix", "__mix-bf16")
        + ("" if r["tag"] else "__bf16") for r in maze]
    mine = run.grid(**run.with_extra(own, [], tag="x"))
    assert run.run_key(mine[0]) == "curiosity_rf__PongNoFrameskip-v4__s1__x"


def test_presets_cover_what_their_questions_need():
    sys.path.insert(0, str(BENCH))
    import run

    def runs_of(preset):
        spec = {k: v for k, v in run.PRESETS[preset].items() if k != "workers"}
        return {(r["script"], r["env_id"].removesuffix("NoFrameskip-v4"), r["frames"]) for r in run.grid(**spec)}

    paper_games = {"Breakout", "BeamRider", "MontezumaRevenge", "Pong", "Qbert", "Riverraid", "Seaquest",
                   "SpaceInvaders"}
    assert runs_of("gpu-short") == {(s, g, 4_000_000) for s in ("curiosity_rf", "curiosity_idf") for g in paper_games}
    assert {(s, g) for s, g, _ in runs_of("gpu-variants")} == {
        (f"curiosity_{v}", g) for v in ("rf", "idf", "vae", "pixels") for g in ("Breakout", "SpaceInvaders")}
    maze = {(r["script"], r["env_id"].split(":")[1], r["frames"], r["tag"], tuple(r["extra"][4:]))
            for r in run.grid(**run.PRESETS["maze"]())}
    mix, goal_only = ("--int-coef", "0.01", "--ext-coef", "1"), ("--int-coef", "0", "--ext-coef", "1")
    assert maze == {("curiosity_extrinsic_mix", "Maze-v0", 4_000_000, "goal_only", goal_only),
                    *((s, world, 4_000_000, tag, mix) for s, tag in (("curiosity_extrinsic_mix", None),
                                                                     ("curiosity_idf", "mix"))
                      for world in ("Maze-v0", "MazeTV-v0")),
                    *(("curiosity_rf", world, 2_000_000, None, ()) for world in ("Maze-v0", "MazeTV-v0"))}
    cpu = runs_of("cpu")
    assert ("curiosity_rf", "SpaceInvaders", 2_000_000) in cpu  # a held-out game where the paper's RF rises early
    assert {("curiosity_rf", "Breakout", 2_000_000), ("curiosity_idf", "Breakout", 2_000_000)} <= cpu


def test_same_numbers_finds_identical_runs_identical_and_names_a_changed_value(tmp_path):
    saved, again = tmp_path / "before.json", tmp_path / "again.json"
    first = bench("same_numbers", "--scripts", "curiosity_rf", "--settings", "tiny", "--out", str(saved))
    assert first.returncode == 0, first.stderr
    results = json.loads(saved.read_text())
    scalars = results["curiosity_rf/tiny"]
    assert len(scalars["losses/policy_loss"]) == 3  # one point per iteration
    assert not any(tag.endswith(("SPS", "_seconds")) for tag in scalars)  # timings are not compared

    value = scalars["losses/value_loss"][1][1]
    scalars["losses/value_loss"][1][1] = value + 1e-6  # as if a change had moved one value of iteration 2
    saved.write_text(json.dumps(results))
    changed = bench("same_numbers", "--scripts", "curiosity_rf", "--settings", "tiny", "--compare", str(saved),
                    "--out", str(again))
    assert changed.returncode == 1
    (line,) = [line for line in changed.stdout.splitlines() if " then, " in line]  # that value alone
    assert line.startswith("curiosity_rf/tiny losses/value_loss step 128: ")  # 2 x 4 envs x 16 steps
    scalars["losses/value_loss"][1][1] = value
    sys.path.insert(0, str(BENCH))
    from same_numbers import differences

    assert differences(results, json.loads(again.read_text())) == []  # the second run repeated the first


def test_same_numbers_runs_its_torchrun_setting_as_two_processes(tmp_path):
    saved = tmp_path / "torchrun.json"
    result = bench("same_numbers", "--scripts", "curiosity_rf", "--settings", "torchrun", "--out", str(saved))
    assert result.returncode == 0, result.stderr
    frames = json.loads(saved.read_text())["curiosity_rf/torchrun"]["charts/frames"]
    assert [v for _, v in frames] == [4 * 2 * 64 * k for k in (1, 2, 3)]  # 2 processes x 4 envs x 16 steps
