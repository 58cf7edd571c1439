"""Runs that survive: checkpoints written atomically, resume, Ctrl-C and SIGTERM, NaN stops, evaluation
and video, and one-line errors for every bad input (README, "Long runs"; docs/long_runs.md)."""
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, read_scalars, run_code, run_script, start_script

SCRIPTS = ["curiosity_rf", "curiosity_idf", "curiosity_vae", "curiosity_pixels", "curiosity_extrinsic_mix"]


def checkpoint_of(log_dir: Path) -> Path:
    (run_dir,) = [p for p in log_dir.iterdir() if p.is_dir()]
    return run_dir / "checkpoint.pt"


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def rf_run(tmp_path_factory):
    """One finished two-iteration RF run, shared by the tests that only read or resume it."""
    log_dir = tmp_path_factory.mktemp("rf_run")
    result = run_script("curiosity_rf", *TINY, "--seed", "3", "--log-dir", str(log_dir))
    assert result.returncode == 0, result.stderr
    return checkpoint_of(log_dir)


# ---------------------------------------------------------------- atomic writes
def test_a_kill_between_write_and_rename_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")
assert rf.save_checkpoint({{"iteration": 1}}, {str(path)!r}) is None
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies after the temporary file is complete
rf.save_checkpoint({{"iteration": 2, "payload": list(range(100000))}}, {str(path)!r})
"""
    result = run_code(code)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (tmp_path / "checkpoint.pt.tmp").stat().st_size > 0  # the new one was written, never renamed
    assert torch.load(path, weights_only=False) == {"iteration": 1}


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(rf, tmp_path):
    path = tmp_path / "checkpoint.pt"
    assert rf.save_checkpoint({"iteration": 1}, str(path)) is None
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")
import torch
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # files stop growing at 1 MiB, as on a full disk
print(rf.save_checkpoint({{"iteration": 2, "weights": torch.zeros(1 << 20)}}, {str(path)!r}))
"""
    result = run_code(code)
    assert result.returncode == 0, result.stderr
    assert "could not write" in result.stdout and "previous checkpoint is intact" in result.stdout
    assert torch.load(path, weights_only=False) == {"iteration": 1}
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))  # the checkpoint needs about 65 MB


def test_a_run_on_a_full_disk_warns_then_stops_with_one_line(rf_run, tmp_path):
    before = torch.load(rf_run, weights_only=False)["iteration"]

    result = run_script("curiosity_rf", "--resume", str(rf_run), "--total-timesteps", "256", "--save-every", "1",
                        setup=small_files)
    assert result.stdout.count("warning: could not write") == 2  # iterations 3 and 4: training went on
    assert_one_line_error(result, "could not write", "previous checkpoint is intact")
    assert torch.load(rf_run, weights_only=False)["iteration"] == before


# ---------------------------------------------------------------- resume
@pytest.mark.parametrize("name", SCRIPTS)
def test_a_resume_goes_on_from_the_saved_state_with_envs_on_new_episodes(name, tmp_path):
    """One iteration and a checkpoint, then one more, twice, from copies of it: both resumed halves are
    equal (the new episodes are seeded), every counter goes on from the checkpoint, nothing is
    re-estimated."""
    first = run_script(name, *TINY[:-1], "64", "--seed", "5", "--log-dir", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    checkpoint, copy = checkpoint_of(tmp_path / "a"), tmp_path / "b" / "run" / "checkpoint.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(checkpoint.read_bytes())
    saved = torch.load(checkpoint, weights_only=False)
    for path in (checkpoint, copy):
        result = run_script(name, "--resume", str(path), "--total-timesteps", "128")
        assert result.returncode == 0, result.stderr
        assert "resuming after iteration 1 (step 64)" in result.stdout
        assert "the envs start new episodes" in result.stdout
        assert "estimating observation" not in result.stdout and "iter 2/2 step 128" in result.stdout
    a, b = read_scalars(tmp_path / "a"), read_scalars(tmp_path / "b")  # a: both halves in one run directory
    compared = [tag for tag in a if tag.startswith("losses/") or tag.endswith(("_reward_mean", "rms_std"))]
    assert "losses/dynamics_loss" in compared
    for tag in compared:
        assert [step for step, _ in a[tag]] == [64, 128], tag
        assert a[tag][1:] == b[tag], f"{tag}: {a[tag][1:]} != {b[tag]}"
    resumed = torch.load(checkpoint, weights_only=False)
    assert resumed["iteration"] == 2 and resumed["global_step"] == 128
    assert resumed["reward_rms"]["count"] == 2 * 64 + 1e-4  # the normaliser's count went on, not restarted
    optimizer_steps = {float(state["step"]) for state in resumed["optimizer"]["state"].values()}
    assert optimizer_steps == {2 * 2 * 2}  # 2 iterations x 2 epochs x 2 minibatches: Adam's moments kept
    for key, value in saved["networks"]["obs_norm"].items():  # observation statistics kept, not re-estimated
        assert torch.equal(value, resumed["networks"]["obs_norm"][key]), key
    before, after = saved["networks"]["policy"], resumed["networks"]["policy"]
    assert not torch.equal(before["logits.weight"], after["logits.weight"])  # and training went on


def test_a_checkpoint_stays_the_same_size_however_long_the_run(rf_run, tmp_path):
    result = run_script("curiosity_rf", *TINY[:-1], str(64 * 16), "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    sizes = []
    for checkpoint in (rf_run, checkpoint_of(tmp_path)):  # 2 iterations, 16 iterations
        sizes.append(checkpoint.stat().st_size)
        saved = torch.load(checkpoint, weights_only=False)
        assert sorted(saved["ranks"][0]) == ["cuda_rng", "recent_returns", "reward_filter", "rng",
                                             "torch_rng"]
    assert abs(sizes[1] - sizes[0]) < 2_000, sizes  # at most the last 100 episode returns differ


def test_a_checkpoint_of_the_earlier_replaying_version_is_not_resumed_but_can_be_scored(rf_run, tmp_path):
    saved = torch.load(rf_run, weights_only=False)
    own = saved["ranks"][0]
    kept = {key: own[key] for key in ("reward_filter", "rng", "torch_rng")}
    saved["ranks"] = [{"env_actions": [], "next_obs": None, "episodes": {}, **kept}]  # that version's
    torch.save(saved, old := tmp_path / "checkpoint.pt")
    assert_one_line_error(run_script("curiosity_rf", "--resume", str(old), "--total-timesteps", "256"),
                          "written by an earlier version", "--eval-checkpoint")
    scored = run_script("curiosity_rf", "--eval-checkpoint", str(old), "--eval-episodes", "1",
                        "--max-episode-steps", "50")
    assert scored.returncode == 0, scored.stderr
    assert "1 episodes of BreakoutNoFrameskip-v4 at step 128" in scored.stdout


def test_a_resume_whose_budget_is_spent_stops_at_once(rf_run):
    result = run_script("curiosity_rf", "--resume", str(rf_run), "--total-timesteps", "160")  # < 128 + 64
    assert_one_line_error(result, "the checkpoint is at step 128, so --total-timesteps 160 leaves no",
                          "pass a larger --total-timesteps")


def test_resume_can_change_what_does_not_fix_the_envs_or_networks(rf_run, tmp_path):
    copy = tmp_path / "run" / "checkpoint.pt"
    copy.parent.mkdir()
    copy.write_bytes(rf_run.read_bytes())
    stale = copy.parent / "checkpoint.pt.tmp"
    stale.write_bytes(b"half a checkpoint")  # as a kill -9 during a write leaves it
    result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "192", "--learning-rate", "3e-4")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    saved = torch.load(copy, weights_only=False)
    assert saved["iteration"] == 3 and saved["args"]["learning_rate"] == 3e-4
    assert saved["args"]["num_envs"] == 4 and saved["args"]["resume"] == str(copy)


# ---------------------------------------------------------------- signals and NaN
def hup_not_ignored():
    """SIGHUP as a terminal's process gets it, even where the test runner ignores it (nohup)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_on_a_real_run_leaves_a_checkpoint_and_says_how_to_resume(sig, tmp_path):
    run = start_script("curiosity_rf", *TINY[:-1], "1000000", "--log-dir", str(tmp_path), setup=hup_not_ignored)
    run.wait_for("iter 3/")  # iteration 3's snapshot or iteration 4 is under way when the signal arrives
    time.sleep(0.5)  # (at "iter 2/", a loaded machine may still be copying iteration 2's state)
    os.kill(run.pid, sig)
    result = run.wait(timeout=120)
    out, err = result.stdout, result.stderr
    assert result.returncode == 128 + sig, err
    assert f"{sig.name}: stopping" in out  # the resume command names the script as it was invoked
    assert f"continue with: python {ROOT / 'curiosity_rf.py'} --resume {checkpoint_of(tmp_path)}" in out
    saved = torch.load(checkpoint_of(tmp_path), weights_only=False)
    assert saved["iteration"] >= 2 and saved["global_step"] == 64 * saved["iteration"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_before_the_first_iteration_stops_with_one_line_and_no_run_directory(sig, tmp_path):
    run = start_script("curiosity_rf", *TINY, "--obs-norm-steps", "10000000", "--log-dir", str(tmp_path),
                       setup=hup_not_ignored)
    run.wait_for("estimating observation statistics")  # 10^7 random steps: minutes of warm-up
    time.sleep(0.5)
    os.kill(run.pid, sig)
    result = run.wait(timeout=60)
    assert result.returncode == 128 + sig
    assert result.stderr.strip() == f"{sig.name}: stopped before the first iteration ended; nothing saved"
    assert list(tmp_path.iterdir()) == []


def test_nan_stops_the_run_naming_the_quantity_and_keeps_the_last_good_checkpoint(rf_run, tmp_path):
    copy = tmp_path / "run" / "checkpoint.pt"
    copy.parent.mkdir()
    copy.write_bytes(rf_run.read_bytes())
    result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "1024", "--learning-rate", "1e38")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "became NaN or infinite in iteration 3" in message and "holds iteration 2" in message, message
    saved = torch.load(copy, weights_only=False)
    assert saved["iteration"] == 2 and all(torch.isfinite(v).all() for v in saved["networks"]["policy"].values())


# ---------------------------------------------------------------- evaluation and video
def test_eval_prints_the_score_of_whole_episodes_and_writes_a_video(rf_run):
    av = pytest.importorskip("av")
    result = run_script("curiosity_rf", "--eval-checkpoint", str(rf_run), "--eval-episodes", "3",
                        "--max-episode-steps", "60", "--capture-video")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("3 episodes of BreakoutNoFrameskip-v4 at step 128: score ") and "length 60 +- 0" in line
    video = rf_run.parent / "checkpoint_eval.mp4"
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == 60 and frames[0].shape == (336, 336)
    assert np.ptp(frames[30]) > 50  # a game screen, not a blank


def test_greedy_eval_is_deterministic(rf_run):
    outputs = [run_script("curiosity_rf", "--eval-checkpoint", str(rf_run), "--eval-episodes", "2", "--eval-greedy",
                          "--max-episode-steps", "100", fresh=fresh).stdout.strip().splitlines()[-1]
               for fresh in (False, True)]
    assert outputs[0] == outputs[1] and "(greedy)" in outputs[0]


def test_training_records_a_video_at_each_checkpoint_without_changing_the_run(tmp_path):
    pytest.importorskip("av")
    for name, flags in (("video", ["--capture-video"]), ("plain", [])):
        result = run_script("curiosity_rf", *TINY, "--save-every", "1", "--max-episode-steps", "30", *flags,
                            "--log-dir", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    videos = sorted(p.name for p in checkpoint_of(tmp_path / "video").parent.glob("videos/*.mp4"))
    assert videos == ["step_000000000064.mp4", "step_000000000128.mp4"]
    with_video, plain = read_scalars(tmp_path / "video"), read_scalars(tmp_path / "plain")
    for tag in ("losses/policy_loss", "losses/dynamics_loss", "charts/intrinsic_reward_mean"):
        assert with_video[tag] == plain[tag], tag  # the video's episode draws from its own random stream


def test_a_closed_terminal_stops_the_run_like_sigterm_and_loses_nothing(tmp_path):
    """The terminal the run prints to closes (an ssh session drops) and SIGHUP follows, at iteration 3's
    log line: from then on every write to the terminal fails, and the run still saves and exits 129."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")
log_iteration = rf.log_iteration


def hang_up_at_3(*a, **k):
    log_iteration(*a, **k)
    if a[3][1] == 3:
        terminal, tty = os.openpty()
        os.dup2(tty, 1), os.dup2(tty, 2)  # the run prints to a terminal...
        os.close(terminal)  # ...which closes: a write to it fails from now on
        try:
            os.write(tty, b"x")
            raise SystemExit("the terminal did not close")
        except OSError:
            os.kill(os.getpid(), signal.SIGHUP)


rf.log_iteration = hang_up_at_3
sys.argv = {["curiosity_rf.py", *TINY[:-1], "100000", "--log-dir", str(tmp_path)]!r}
rf.main()
"""
    result = run_code(code, setup=hup_not_ignored)
    assert result.returncode == 129, result.stderr
    assert "iter 3/" in result.stdout and "Traceback" not in result.stderr
    assert torch.load(checkpoint_of(tmp_path), weights_only=False)["iteration"] == 3


@pytest.mark.parametrize("point", ["import atexit", "import ale_py", "tyro.cli", "torch.load"])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(rf_run, point):
    """SIGINT in the first seconds: at the script's first import after `signal` and `sys` (the handler comes
    before it), while torch and the rest are imported, while the flags are parsed, while a checkpoint loads."""
    code = f"""
import builtins, os, runpy, signal, sys
import torch, tyro
interrupt = lambda: os.kill(os.getpid(), signal.SIGINT)
if {point!r}.startswith("import "):
    real_import, module = builtins.__import__, {point!r}[len("import "):]
    builtins.__import__ = lambda name, *a, **k: (name == module and interrupt(), real_import(name, *a, **k))[1]
else:
    module, name = {point!r}.split(".")
    real = getattr(globals()[module], name)
    setattr(globals()[module], name, lambda *a, **k: (interrupt(), real(*a, **k))[1])
sys.argv = [{str(ROOT / "curiosity_rf.py")!r}, "--resume", {str(rf_run)!r}, "--total-timesteps", "256"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    result = run_code(code, timeout=120)  # (forked: an import statement calls __import__ even when cached)
    assert result.returncode == 130 and result.stderr == "", result.stderr
    assert torch.load(rf_run, weights_only=False)["iteration"] == 2  # untouched


def test_ctrl_c_during_eval_exits_130_without_a_traceback(rf_run):
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")
step = rf.FrameStack.step
rf.FrameStack.step = lambda self, actions: (os.kill(os.getpid(), signal.SIGINT), step(self, actions))[1]
sys.argv = ["curiosity_rf.py", "--eval-checkpoint", {str(rf_run)!r}, "--eval-episodes", "2"]
rf.main()
"""
    result = run_code(code, timeout=120)
    assert result.returncode == 130 and result.stderr == "", result.stderr


# ---------------------------------------------------------------- bad input
def test_missing_checkpoint(tmp_path):
    assert_one_line_error(run_script("curiosity_rf", "--resume", str(tmp_path / "nope.pt")), "no checkpoint at")
    assert_one_line_error(run_script("curiosity_rf", "--eval-checkpoint", str(tmp_path / "nope.pt")), "no checkpoint at")


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(run_script("curiosity_rf", "--resume", str(tmp_path / "checkpoint.pt")), "not a readable checkpoint")


def test_a_checkpoint_of_another_script(rf_run):
    assert_one_line_error(run_script("curiosity_idf", "--resume", str(rf_run)), "written by curiosity_rf.py, not curiosity_idf.py")


def test_a_checkpoint_with_parts_missing(tmp_path):
    torch.save({"script": "curiosity_rf.py", "args": {}}, tmp_path / "forged.pt")
    result = run_script("curiosity_rf", "--resume", str(tmp_path / "forged.pt"))
    assert_one_line_error(result, "is damaged: args.seed differs (saved nothing, expected an int)")


@pytest.mark.parametrize("flag, value", [("--env-id", "PongNoFrameskip-v4"), ("--feature-dim", "256"), ("--num-envs", "8")])
def test_a_checkpoint_with_another_env_or_network_size(rf_run, flag, value):
    assert_one_line_error(run_script("curiosity_rf", "--resume", str(rf_run), flag, value), f"trained with {flag}", "drop the flag")



def test_resume_restores_the_gpu_random_stream_on_a_gpu_only(rf, monkeypatch):
    """The CUDA line runs on the CPU too, with the CUDA call mocked: a GPU checkpoint's state is a tensor."""
    calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append((state, device)))
    rng = np.random.default_rng(0)
    saved = {"rng": np.random.default_rng(7).bit_generator.state, "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.ByteTensor(16).fill_(3)}
    rf.restore_rng_states(saved, rng, torch.device("cuda:0"))
    assert len(calls) == 1 and torch.equal(calls[0][0], saved["cuda_rng"]) and calls[0][1] == torch.device("cuda:0")
    assert rng.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)
    rf.restore_rng_states({**saved, "cuda_rng": None}, rng, torch.device("cuda:0"))  # a CPU run resumed on a GPU
    rf.restore_rng_states(saved, rng, torch.device("cpu"))  # a GPU run resumed on the CPU
    assert len(calls) == 1


def test_a_signal_only_notes_the_stop_and_the_next_stop_point_raises_it(rf, monkeypatch):
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test, should SIGHUP replace it
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal (not under nohup)
        rf.setup(rf.Args(cuda=False))  # installs the one handler
        rf.stop_point()  # no signal yet: goes on
        os.kill(os.getpid(), signal.SIGHUP)
        with pytest.raises(rf.Stop, match="SIGHUP"):
            rf.stop_point()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a further signal adds nothing, and raises nothing here
        assert rf.STOP == ["SIGHUP", "SIGTERM", "SIGINT"]
        with pytest.raises(rf.Stop, match="SIGTERM"):  # SIGTERM wins: a job runner's stop
            rf.stop_point()
        rf.STOP.clear()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # under nohup
        rf.setup(rf.Args(cuda=False))
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # a closed terminal does not stop the run
        assert signal.getsignal(signal.SIGINT) == rf.request_stop
    finally:
        rf.STOP.clear()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def run_with_signals_at(tmp_path, *points: str) -> subprocess.CompletedProcess:
    """Runs curiosity_rf.py's main() in a fresh process that sends itself SIGINT at each named point: in
    `log_iteration` of iteration 3, in `intrinsic_reward` (iteration 1), or, once a stop was asked for,
    just before the envs' or the log writer's close() or the checkpoint's write (a second Ctrl-C at the
    risky moments)."""
    argv = ["curiosity_rf.py", *TINY[:-1], "100000", "--log-dir", str(tmp_path)]
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")


def interrupt(function, when):
    def wrapped(*a, **k):
        if when(*a):
            os.kill(os.getpid(), signal.SIGINT)
        return function(*a, **k)
    return wrapped


always, again = (lambda *a: True), (lambda *a: bool(rf.STOP))  # again: only once a stop was asked for
targets = {{"log_iteration": (rf, "log_iteration", lambda *a: a[3][1] == 3),
           "intrinsic_reward": (rf, "intrinsic_reward", always), "envs.close": (rf.FrameStack, "close", again),
           "writer.close": (rf.SummaryWriter, "close", again), "save_checkpoint": (rf, "save_checkpoint", again)}}
for point in {list(points)!r}:
    owner, name, when = targets[point]
    setattr(owner, name, interrupt(getattr(owner, name), when))
sys.argv = {argv!r}
rf.main()
"""
    return run_code(code)


def test_a_second_ctrl_c_while_closing_or_saving_loses_nothing(tmp_path):
    result = run_with_signals_at(tmp_path, "log_iteration", "envs.close", "writer.close", "save_checkpoint")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "SIGINT: stopping" in result.stdout
    checkpoint = checkpoint_of(tmp_path)
    assert (f"holds iteration 3 (step 192); continue with: python curiosity_rf.py --resume {checkpoint}"
            in result.stdout)
    assert torch.load(checkpoint, weights_only=False)["iteration"] == 3  # written whole, after 3 signals
    events = read_scalars(tmp_path)["losses/policy_loss"]
    assert [step for step, _ in events] == [64, 128, 192]  # the writer closed cleanly, every iteration in


def test_a_stop_during_the_first_iteration_exits_130_and_leaves_no_run_directory(tmp_path):
    result = run_with_signals_at(tmp_path, "intrinsic_reward")
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "SIGINT: stopped before the first iteration ended; nothing saved"
    assert list(tmp_path.iterdir()) == []


def test_a_second_process_on_the_same_run_directory_stops_with_one_line(rf_run, tmp_path):
    import fcntl

    copy = tmp_path / "run" / "checkpoint.pt"
    copy.parent.mkdir()
    copy.write_bytes(rf_run.read_bytes())
    with open(copy.parent / ".lock", "a") as lock:  # as the first process holds it while it trains
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "256")
    assert_one_line_error(result, f"another process is training in {copy.parent}")
    assert torch.load(copy, weights_only=False)["iteration"] == 2  # untouched
    again = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "192")  # lock released
    assert again.returncode == 0, again.stderr


@pytest.fixture
def tmpfs(tmp_path):
    """A small RAM file system, to fill as a full disk is filled; only where this test may mount (root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()

    def mount(size: str) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        return mount_point

    yield mount
    if os.path.ismount(mount_point):
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_log_dir_on_a_full_disk_stops_with_one_line_before_any_work(tmpfs):
    disk = tmpfs("64k")
    with pytest.raises(OSError):
        with open(disk / "filler", "wb") as f:
            f.write(b"x" * (1 << 20))
    result = run_script("curiosity_rf", *TINY, "--log-dir", str(disk / "runs"))
    assert_one_line_error(result, "cannot write in the run directory", "No space left on device")
    assert "estimating" not in result.stdout
    assert list((disk / "runs").iterdir()) == []  # the new run's directory is removed


def test_a_checkpoint_write_on_a_full_disk_says_no_space_and_keeps_the_previous(rf_run, tmpfs):
    disk = tmpfs(f"{rf_run.stat().st_size + (4 << 20)}")  # room for one checkpoint, not for two
    copy = disk / "run" / "checkpoint.pt"
    copy.parent.mkdir()
    copy.write_bytes(rf_run.read_bytes())
    result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "256", "--save-every", "1")
    assert result.stdout.count("(No space left on device); the previous checkpoint is intact") == 2
    assert_one_line_error(result, "could not write", "No space left on device")
    assert torch.load(copy, weights_only=False)["iteration"] == 2
    assert not (copy.parent / "checkpoint.pt.tmp").exists()


def test_evaluation_with_video_on_a_full_disk_prints_the_score_and_leaves_no_broken_video(rf_run, tmpfs):
    pytest.importorskip("av")
    disk = tmpfs(f"{rf_run.stat().st_size + (1 << 20)}")
    copy = disk / "run" / "checkpoint.pt"
    copy.parent.mkdir()
    copy.write_bytes(rf_run.read_bytes())
    with pytest.raises(OSError):  # the disk is full: the video's empty file can be made, not written
        (disk / "filler").write_bytes(b"x" * (2 << 20))
    result = run_script("curiosity_rf", "--eval-checkpoint", str(copy), "--capture-video", "--eval-episodes", "1",
                        "--max-episode-steps", "50")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"warning: could not write the video {disk}/run/checkpoint_eval.mp4")
    assert "1 episodes of BreakoutNoFrameskip-v4 at step 128" in result.stdout and "video" not in result.stdout
    assert sorted(p.name for p in copy.parent.iterdir()) == ["checkpoint.pt"]


def test_a_sigterm_during_the_shutdown_save_wins_over_the_ctrl_c_that_began_it(rf, tmp_path, monkeypatch):
    monkeypatch.setattr(rf, "STOP", ["SIGINT", "SIGTERM"])  # SIGTERM came while finish() saved
    snapshot = {"iteration": 1, "global_step": 64}
    with pytest.raises(SystemExit) as stop:
        rf.finish(snapshot, None, str(tmp_path / "checkpoint.pt"), None, rf.Stop("SIGINT"), [], [])
    assert stop.value.code == 143  # as for SIGTERM alone: a job runner sees the kill it sent
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False) == snapshot


def test_a_run_with_the_largest_seed_trains_and_resumes(tmp_path):
    """Env seeds grow with the iteration and the process (seed + (k x processes + r) x N + i): they wrap
    into ALE's int32 range instead of overflowing it, at the start and after a resume."""
    first = run_script("curiosity_rf", *TINY, "--seed", str(2**31 - 1), "--log-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    resumed = run_script("curiosity_rf", "--resume", str(checkpoint_of(tmp_path)), "--total-timesteps", "256")
    assert resumed.returncode == 0, resumed.stderr
    assert "iter 4/4" in resumed.stdout


def test_settings_this_version_does_not_know_are_ignored_on_resume(rf_run, tmp_path):
    saved = torch.load(rf_run, weights_only=False)
    saved["args"] = {**saved["args"], "env_parts": 2, "a_flag_from_the_future": True}
    torch.save(saved, copy := tmp_path / "checkpoint.pt")
    result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "192")
    assert result.returncode == 0, result.stderr
    assert torch.load(copy, weights_only=False)["iteration"] == 3


@pytest.mark.parametrize("flag", ["--eval-checkpoint", "--resume"])
def test_a_checkpoint_missing_a_weight_or_with_one_too_many_stops_with_one_line(rf_run, tmp_path, flag):
    saved = torch.load(rf_run, weights_only=False)
    weights = saved["networks"]["policy"]
    weights["logits.extra"] = weights.pop("logits.weight")
    torch.save(saved, damaged := tmp_path / "checkpoint.pt")
    result = run_script("curiosity_rf", flag, str(damaged), "--total-timesteps", "256", "--eval-episodes", "1")
    assert_one_line_error(result, "is damaged: networks.policy.logits.weight differs (saved nothing, expected "
                                  "a float32 tensor of shape (4, 512))")
    weights["logits.weight"] = weights["logits.extra"]  # the comparison ignores parts it does not know...
    torch.save(saved, damaged)
    result = run_script("curiosity_rf", flag, str(damaged), "--total-timesteps", "256", "--eval-episodes", "1")
    assert_one_line_error(result, "the checkpoint's policy does not fit this script", "logits.extra")  # torch not


def set_nan(saved):
    saved["networks"]["policy"]["logits.weight"][0, 0] = float("nan")


def checked(script, path: str, monkeypatch, flag: str = "--resume") -> None:
    """What --resume or --eval-checkpoint of `path` checks before anything is built: parse_args, in this process
    (its signal handlers left as pytest's)."""
    monkeypatch.setattr(script, "catch_stop_signals", lambda handler: None)
    monkeypatch.setattr(sys, "argv", [f"{script.__name__}.py", flag, path, "--total-timesteps", str(10**8)])
    script.parse_args()


def foreign_rng(saved):
    saved["ranks"][0]["rng"] = np.random.Generator(np.random.MT19937(1)).bit_generator.state


# Each part of a checkpoint damaged as the probe of bad inputs found it, and the one line that names it
DAMAGED = [
    (lambda saved: saved.update(args=["not", "a", "dict"]), "args differs (saved a list, expected a dict)"),
    (lambda saved: saved["args"].update(num_envs="4"), "args.num_envs differs (saved a str, expected an int)"),
    (lambda saved: saved["args"].update(ent_coef=True), "args.ent_coef differs (saved a bool, expected a float)"),
    (lambda saved: saved["args"].pop("num_envs"), "args.num_envs differs (saved nothing, expected an int)"),
    (lambda saved: saved["args"].update(num_minibatches=0),  # a bad value stored, not a flag the user passed
     "args.num_minibatches differs (saved 0, expected between 1 and 2,147,483,647)"),
    (set_nan, "its networks hold NaN or infinite values"),
    (lambda saved: saved["reward_rms"].update(var=float("inf")), "its reward_rms hold NaN or infinite values"),
    (lambda saved: saved.update(iteration="2"), "iteration differs (saved a str, expected an int)"),
    (lambda saved: saved["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)),  # was an INTERNAL ASSERT
     "optimizer.state.0.exp_avg differs (saved a float32 tensor of shape (3,), expected a float32 tensor of "
     "shape (32, 4, 8, 8))"),
    (lambda saved: saved["reward_rms"].update(mean="0.5"), "reward_rms.mean differs (saved a str, expected a float)"),
    (lambda saved: saved["networks"].update(policy=[1, 2]), "networks.policy differs (saved a list, expected a dict)"),
    (lambda saved: saved["ranks"][0].pop("rng"), "ranks[0].rng differs (saved nothing, expected a dict)"),
    (foreign_rng, "ranks[0].rng.state.state differs (saved nothing, expected an int)"),
    (lambda saved: saved["ranks"][0].update(recent_returns={}),
     "ranks[0].recent_returns differs (saved a dict, expected a list)"),
    (lambda saved: saved["ranks"][0].update(recent_returns=["a"]),
     "ranks[0].recent_returns[0] differs (saved a str, expected a float)"),
    (lambda saved: saved["ranks"][0].update(reward_filter=[0.0] * 4),
     "ranks[0].reward_filter differs (saved a list, expected a float64 array of shape (4,))"),
    (lambda saved: saved.update(iteration=-3), "iteration differs (saved -3, expected 1 or more)"),
    (lambda saved: saved.update(global_step=-64), "global_step differs (saved -64, expected 128: 2 iterations of 64"),
    (lambda saved: saved.update(ranks=[]), "ranks differs (saved an empty list, expected a part for each process)"),
    (lambda saved: saved["args"].update(env_id="PongNoFrameskip-v4"),  # Breakout's 4 actions, Pong's 6
     "networks.policy.logits.weight differs (saved a float32 tensor of shape (4, 512), expected a float32 tensor "
     "of shape (6, 512))"),
    (lambda saved: [saved.pop(part) for part in ("networks", "optimizer")],
     "networks differs (saved nothing, expected a dict)"),
]


@pytest.mark.parametrize("damage, message", DAMAGED)
def test_a_damaged_checkpoint_is_named_with_what_is_wrong(rf, rf_run, tmp_path, monkeypatch, damage, message):
    saved = torch.load(rf_run, weights_only=False)
    damage(saved)
    torch.save(saved, damaged := tmp_path / "checkpoint.pt")
    with pytest.raises(SystemExit) as stop:  # before any env, process or network is built
        checked(rf, str(damaged), monkeypatch)
    assert str(stop.value).startswith(f"error: {str(damaged)!r} is damaged: {message}")
    assert str(stop.value).endswith("resume or score another checkpoint, or start a new run")


def test_evaluation_checks_only_what_it_uses(rf, rf_run, tmp_path, monkeypatch):
    """A checkpoint whose training state is damaged can still be scored; its policy must fit the game."""
    saved = torch.load(rf_run, weights_only=False)
    saved["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    saved["ranks"] = []
    torch.save(saved, path := tmp_path / "checkpoint.pt")
    checked(rf, str(path), monkeypatch, "--eval-checkpoint")  # passes
    saved["args"]["env_id"] = "SeaquestNoFrameskip-v4"
    torch.save(saved, path)
    with pytest.raises(SystemExit, match=r"networks.policy.logits.weight differs .* expected a float32 tensor of "
                                         r"shape \(18, 512\)"):
        checked(rf, str(path), monkeypatch, "--eval-checkpoint")


def test_what_a_fresh_run_saves_is_what_a_run_saves(rf, rf_run):
    """The fresh state (on the meta device, nothing allocated) has every part of a real checkpoint, of the
    same kinds, shapes and dtypes: the comparison finds nothing in an undamaged one."""
    saved = torch.load(rf_run, weights_only=False)
    args = rf.Args(**{k: v for k, v in saved["args"].items() if k in vars(rf.Args())})
    fresh = rf.fresh_state(args, 4)
    assert set(fresh) == set(saved) - {"args"}
    assert rf.difference(saved, fresh) is None
    assert fresh["networks"]["policy"]["logits.weight"].device.type == "meta"
    assert len(fresh["optimizer"]["state"]) == len(saved["optimizer"]["state"]) > 0


def test_the_comparison_tolerates_what_is_harmless(rf):
    fresh = {"count": 1e-4, "gpu": None, "items": [0.0], "options": {"param_groups": [{"params": [0], "lr": 1e-4}]},
             "weights": torch.zeros(2, 3)}
    saved = {"count": 7, "gpu": torch.zeros(16, dtype=torch.uint8), "items": [], "unknown": "ignored",
             "options": {"param_groups": [{"params": [0], "future_option": 1}]}, "weights": torch.ones(2, 3)}
    assert rf.difference(saved, fresh) is None  # an int for a float, anything where None, extra parts, options
    assert rf.difference({**saved, "weights": torch.ones(3, 2)}, fresh) == (
        "weights differs (saved a float32 tensor of shape (3, 2), expected a float32 tensor of shape (2, 3))")
    assert rf.difference({**saved, "weights": torch.ones(2, 3, dtype=torch.float64)}, fresh).startswith(
        "weights differs (saved a float64 tensor")
    assert rf.difference({**saved, "count": 1.5}, {**fresh, "count": 3}) == (
        "count differs (saved a float, expected an int)")
    assert rf.difference({**saved, "options": {"param_groups": [{}]}}, fresh) == (
        "options.param_groups[0].params differs (saved nothing, expected a list)")
    assert rf.kind(np.float64(1)) == rf.kind(np.zeros(())) == "a float" and rf.kind(np.int64(1)) == "an int"


@pytest.mark.parametrize("flag", ["--resume", "--eval-checkpoint"])
def test_a_damaged_checkpoint_stops_with_one_line_before_any_work(rf_run, tmp_path, flag):
    saved = torch.load(rf_run, weights_only=False)
    set_nan(saved)
    torch.save(saved, damaged := tmp_path / "checkpoint.pt")
    result = run_script("curiosity_rf", flag, str(damaged), "--total-timesteps", "256", "--eval-episodes", "1")
    assert_one_line_error(result, f"{str(damaged)!r} is damaged: its networks hold NaN", "start a new run")
    assert result.stdout == ""


def test_a_damaged_training_state_stops_a_resume_with_one_line_and_nothing_built(rf_run, tmp_path):
    saved = torch.load(rf_run, weights_only=False)
    saved["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)  # before: "continue with: --resume", then exit 139
    torch.save(saved, damaged := tmp_path / "checkpoint.pt")
    result = run_script("curiosity_rf", "--resume", str(damaged), "--total-timesteps", "256")
    assert_one_line_error(result, "is damaged: optimizer.state.0.exp_avg differs")
    assert result.stdout == "" and list(tmp_path.iterdir()) == [damaged]


@pytest.mark.parametrize("flag", ["--resume", "--eval-checkpoint"])
def test_an_empty_checkpoint_path_is_no_checkpoint_not_a_new_run(flag, tmp_path):
    result = run_script("curiosity_rf", flag, "", "--log-dir", str(tmp_path))  # an unset shell variable
    assert_one_line_error(result, "no checkpoint at ''")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_without_a_setting_that_fixes_nothing_says_which_default_it_takes(rf_run, tmp_path):
    saved = torch.load(rf_run, weights_only=False)
    del saved["args"]["ent_coef"], saved["args"]["save_every"]
    torch.save(saved, copy := tmp_path / "checkpoint.pt")
    result = run_script("curiosity_rf", "--resume", str(copy), "--total-timesteps", "192")
    assert result.returncode == 0, result.stderr
    assert ("note: the checkpoint does not record --ent-coef, --save-every: the defaults or the flags given "
            "now are used") in result.stdout
    assert torch.load(copy, weights_only=False)["args"]["ent_coef"] == 0.001  # the default, now recorded


def test_evaluation_with_video_into_a_read_only_folder_stops_before_playing(rf_run, tmpfs):
    disk = tmpfs("100m")
    (disk / "run").mkdir()
    (disk / "run" / "checkpoint.pt").write_bytes(rf_run.read_bytes())
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    assert remounted.returncode == 0, remounted.stderr
    result = run_script("curiosity_rf", "--eval-checkpoint", str(disk / "run" / "checkpoint.pt"),
                        "--capture-video", "--eval-episodes", "1")
    assert_one_line_error(result, "cannot write the video", "Read-only file system", "drop --capture-video")
    assert "episodes of" not in result.stdout


def test_evaluation_ignores_rules_of_training(rf_run):
    """--num-minibatches must divide --num-envs in training; evaluation makes no minibatches."""
    result = run_script("curiosity_rf", "--eval-checkpoint", str(rf_run), "--num-minibatches", "3",
                        "--eval-episodes", "1")
    assert result.returncode == 0, result.stderr
    assert "1 episodes of BreakoutNoFrameskip-v4" in result.stdout


def test_a_resume_from_a_read_only_directory_says_to_copy_the_run(rf_run, tmpfs):
    disk = tmpfs("100m")
    (disk / "run").mkdir()
    (disk / "run" / "checkpoint.pt").write_bytes(rf_run.read_bytes())
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    assert remounted.returncode == 0, remounted.stderr
    result = run_script("curiosity_rf", "--resume", str(disk / "run" / "checkpoint.pt"), "--total-timesteps", "256")
    assert_one_line_error(result, "cannot write in the run directory", "Read-only file system",
                          "copy the run directory somewhere writable and resume from there")


def crash_at(function: str, tmp_path, *args: str, when: str = "True") -> subprocess.CompletedProcess:
    """Runs curiosity_rf.py's main() with `function` raising RuntimeError whenever `when` holds (an
    expression of `calls`, the number of calls so far): a crash, as a bug or a failing device causes."""
    argv = ["curiosity_rf.py", *TINY[:-1], "256", "--log-dir", str(tmp_path), *args]
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
from common import load_script
rf = load_script("curiosity_rf")
original, calls = rf.{function}, 0


def broken(*a, **k):
    global calls
    calls += 1
    if {when}:
        raise RuntimeError("the device failed")
    return original(*a, **k)


rf.{function} = broken
sys.argv = {argv!r}
rf.main()
"""
    return run_code(code)


def test_a_run_that_crashes_while_starting_leaves_no_run_directory(tmp_path):
    result = crash_at("make_envs", tmp_path)
    assert result.returncode == 1 and "RuntimeError: the device failed" in result.stderr  # a crash shows
    assert list(tmp_path.iterdir()) == []


def test_a_crash_saves_the_last_finished_iteration_and_keeps_the_logs(tmp_path):
    """--save-every 0: no checkpoint before the end, so all would be lost to the crash in iteration 3."""
    result = crash_at("intrinsic_reward", tmp_path, "--save-every", "0", when="calls == 3")
    assert result.returncode == 1 and "RuntimeError: the device failed" in result.stderr
    checkpoint = checkpoint_of(tmp_path)
    assert (f"holds iteration 2 (step 128); continue with: python curiosity_rf.py --resume {checkpoint}"
            in result.stderr)
    assert torch.load(checkpoint, weights_only=False)["iteration"] == 2
    assert [step for step, _ in read_scalars(tmp_path)["losses/policy_loss"]] == [64, 128]


def test_two_new_runs_started_in_one_second_do_not_share_a_run_directory(rf, tmp_path, monkeypatch):
    monkeypatch.setattr(rf.time, "time", lambda: 1_800_000_000.0)  # the second in the run directory's name
    args = rf.Args(log_dir=str(tmp_path))
    run_dir, checkpoint_path = rf.open_run_dir(args, rank=0)
    assert checkpoint_path == os.path.join(run_dir, "checkpoint.pt") and os.listdir(run_dir) == [".lock"]
    with pytest.raises(SystemExit, match="exists: a run of this --exp-name and --seed started in the same second"):
        rf.open_run_dir(args, rank=0)
