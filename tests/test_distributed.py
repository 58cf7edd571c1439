"""torchrun: two CPU processes (gloo) with their own envs on a real game share weights and statistics,
only rank 0 writes, and a distributed run resumes exactly (README, "Several processes, GPUs and machines")."""
import shutil
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, read_scalars, run_script, torchrun


def only_run_dir(log_dir):
    (run_dir,) = [p for p in log_dir.iterdir()]
    return run_dir


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    """Two iterations of RF in two processes: read by the first test, copied and resumed by the second."""
    log_dir = tmp_path_factory.mktemp("torchrun")
    result = torchrun("curiosity_rf", *TINY, "--total-timesteps", "256", "--seed", "3", "--log-dir", str(log_dir))
    assert result.returncode == 0, result.stderr
    return result, log_dir


def test_two_processes_share_weights_and_statistics_and_only_rank_0_writes(distributed_run):
    result, log_dir = distributed_run
    assert "weights identical in all 2 processes" in result.stdout  # checksums of every parameter, all-gathered
    assert result.stdout.count("iter 1/") == 1  # rank 0 alone prints
    run_dir = only_run_dir(log_dir)
    assert sorted(p.name.split(".")[0] or p.name for p in run_dir.iterdir()) == [".lock", "checkpoint", "events"]
    scalars = read_scalars(log_dir)
    assert [v for _, v in scalars["charts/frames"]] == [4 * 128, 4 * 256]  # steps of both processes
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert saved["reward_rms"]["count"] == 2 * 2 * 64 + 1e-4  # each process's 2 x 64 rewards, merged
    first, second = saved["ranks"]
    assert not np.array_equal(first["reward_filter"], second["reward_filter"])  # envs seeded apart
    assert first["rng"] != second["rng"] and not torch.equal(first["torch_rng"], second["torch_rng"])


def test_a_distributed_run_resumes_only_with_as_many_processes_and_goes_on_from_its_state(distributed_run, tmp_path):
    first, log_dir = distributed_run
    checkpoint = only_run_dir(log_dir) / "checkpoint.pt"
    assert f"torchrun --nproc_per_node 2 {ROOT / 'curiosity_rf.py'} --resume {checkpoint}" in first.stdout
    shutil.copytree(log_dir, tmp_path / "runs")  # the run directory, its checkpoint and its first events
    checkpoint = only_run_dir(tmp_path / "runs") / "checkpoint.pt"
    alone = run_script("curiosity_rf", "--resume", str(checkpoint), "--total-timesteps", "512")
    assert alone.returncode != 0 and "Traceback" not in alone.stderr
    assert "holds 2 processes' envs, not 1; resume it with torchrun --nproc_per_node 2" in alone.stderr
    second = torchrun("curiosity_rf", "--resume", str(checkpoint), "--total-timesteps", "512")
    assert second.returncode == 0, second.stderr
    assert "resuming after iteration 2 (step 256)" in second.stdout
    assert "weights identical in all 2" in second.stdout
    scalars = read_scalars(tmp_path / "runs")
    for tag in ("losses/policy_loss", "losses/dynamics_loss", "charts/intrinsic_reward_mean"):
        assert [step for step, _ in scalars[tag]] == [128, 256, 384, 512], tag
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["reward_rms"]["count"] == 4 * 2 * 64 + 1e-4  # 4 iterations of both processes' 64 rewards
    assert saved["ranks"][0]["rng"] != saved["ranks"][1]["rng"]


@pytest.mark.parametrize("script", ["curiosity_idf", "curiosity_vae", "curiosity_pixels", "curiosity_extrinsic_mix"])
def test_every_script_trains_under_torchrun(script, tmp_path):
    result = torchrun(script, *TINY, "--total-timesteps", "128", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "weights identical in all 2 processes" in result.stdout and result.stdout.count("iter 1/1") == 1
    saved = torch.load(only_run_dir(tmp_path) / "checkpoint.pt", weights_only=False)
    assert len(saved["ranks"]) == 2 and saved["global_step"] == 128


@pytest.mark.parametrize("flags", [["--num-envs", "0"], ["--no-such-flag"]])
def test_a_bad_flag_under_torchrun_is_told_once(flags, tmp_path):
    result = torchrun("curiosity_rf", *flags, "--log-dir", str(tmp_path))
    assert result.returncode != 0
    said = "error: --num-envs must be between 1" if flags[0] == "--num-envs" else "--no-such-flag"
    assert result.stderr.count(said) == 1, result.stderr  # by rank 0; rank 1 exits as it does, silently
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tyro_exit, code", [(None, 1), (2, 2), (0, 0), (143, 143)])
def test_a_process_other_than_rank_0_gives_rank_0_time_to_say_why_before_it_fails(rf, monkeypatch, capsys,
                                                                                   tyro_exit, code):
    """torchrun ends every process as soon as one fails: a rank 1 that failed first once cut off rank 0's
    message (the flag test above, seen once on a loaded machine). Rank 1 now waits before it fails, silently:
    after our check of --num-envs 0, after tyro's exit 2 (an unknown flag); not after --help's exit 0, nor
    on a stop signal (SIGTERM: 143), which torchrun sends to end it."""
    slept = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(rf.time, "sleep", slept.append)
    monkeypatch.setattr(rf, "catch_stop_signals", lambda handler: None)  # (the tests' own handlers stay)
    monkeypatch.setattr(rf.sys, "argv", ["curiosity_rf.py", "--num-envs", "0"])
    monkeypatch.setattr(rf.sys, "stdout", rf.sys.stdout)  # (parse_args points it at /dev/null on rank 1)
    if tyro_exit is not None:  # (tyro prints its own help and errors, then exits with these codes)
        monkeypatch.setattr(rf.tyro, "cli", lambda *a, **k: (print("tyro: what it says", file=sys.stderr),
                                                             sys.exit(tyro_exit)))
    with pytest.raises(SystemExit) as stop:
        rf.parse_args()
    assert stop.value.code == code and slept == ([10] if code in (1, 2) else [])
    assert capsys.readouterr().err == ""
