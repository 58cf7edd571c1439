"""Helpers shared by the tests: load a script as a module, run it as a user would, read its logs."""
import atexit
import io
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import load_script  # noqa: E402  (one loader for tests and benchmarks)
# Tiny but real: a real Atari game, two iterations of every phase of the loop. The warm-up gets 2 envs, not
# the default 8: ALE takes about 0.2 s to build and reset each emulator, a third of such a run.
TINY = ["--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "2",
        "--obs-norm-steps", "64", "--obs-norm-envs", "2", "--total-timesteps", "128"]


def reference_frame_stack(frames: list, dones: list, num_frames: int = 4) -> np.ndarray:
    """The reference's FrameStack, built from single frames: frames[t] is (N, 1, H, W), frames[0] the reset's,
    dones[t] the episode ends of step t. An episode's k-th stack is [f0] * (3 - k) + [f0 .. fk]."""
    episodes, stacks = [[frame] for frame in frames[0]], []
    for t, step_frames in enumerate(frames):
        if t > 0:
            episodes = [[f] if dones[t - 1][i] else episodes[i] + [f] for i, f in enumerate(step_frames)]
        stacks.append([np.concatenate([ep[0]] * max(0, num_frames - len(ep)) + ep[-num_frames:]) for ep in episodes])
    return np.array(stacks)


# A script's process spends seconds importing torch, torch._dynamo (which Adam's first step imports), ale_py,
# gymnasium and tensorboard before its first line of work, and the suite starts over a hundred of them. So
# run_script forks each run from one warm process that has imported all of that and run no torch op
# (multiprocessing's forkserver): still a fresh process per run, with its own argv, cwd, environment, exit
# code, stdout and stderr, and its atexit handlers run at the end as Python's would. Measured side by side
# on 2 cores: a one-line error 3.7 s -> 0.35 s, a TINY run 11.9 s -> 6.0 s. Forked runs share the warm
# process's hash seed and memory layout, so a test that checks two runs repeat exactly starts one of them
# with fresh=True (a real interpreter); so do the tests of Ctrl-C during the imports, torchrun and the
# benchmark runner. Signals, crashes and full disks go to forked runs too (start_script, run_code): a
# signal test's run 9.4 s -> about 4.5 s.
PRELOAD = ["torch", "torch._dynamo", "numpy", "gymnasium", "ale_py", "tyro", "torch.utils.tensorboard",
           "torch.distributed.launcher.api"]  # what torchrun imports (itself not: runpy warns when it runs it)
_forkserver = None


def _run_as_main(script: str, args: list[str], environ: dict, stdout: str, stderr: str, setup) -> None:
    """In the forked process: `python script args` (`python -m script args` where script is a module's name)
    with stdout and stderr going to files, after `setup()` (as subprocess's preexec_fn). multiprocessing
    turns a SystemExit into the exit code (a message to stderr and code 1, as Python does)."""
    for fd, path in ((1, stdout), (2, stderr)):
        file = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(file, fd)
        os.close(file)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(ROOT)
    multiprocessing.set_start_method(None, force=True)  # the platform's default for the script's own workers
    module = not script.endswith(".py")
    sys.argv, sys.path[0] = [script, *args], str(ROOT if module else Path(script).parent)
    if setup is not None:
        setup()
    try:
        if module:
            runpy.run_module(script, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    finally:
        atexit._run_exitfuncs()  # multiprocessing ends its processes with os._exit, which skips them


class Started:
    """A script under way in a process forked from the warm one (start_script): `pid` to signal it,
    `stdout_so_far()`, and `wait()` for its CompletedProcess."""

    def __init__(self, script: str, args: list[str], setup, files: tempfile.TemporaryDirectory):
        global _forkserver
        if _forkserver is None:
            _forkserver = multiprocessing.get_context("forkserver")
            _forkserver.set_forkserver_preload(PRELOAD)
        self.command = [sys.executable, *([] if script.endswith(".py") else ["-m"]), script, *args]
        self.files = files
        self.out, self.err = (Path(files.name) / name for name in ("stdout", "stderr"))
        for file in (self.out, self.err):
            file.touch()
        self.process = _forkserver.Process(target=_run_as_main, args=(script, list(args), dict(os.environ),
                                                                       str(self.out), str(self.err), setup))
        self.process.start()
        self.pid = self.process.pid

    def stdout_so_far(self) -> str:
        return self.out.read_text()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Until the script has printed `text` (or has ended, or `timeout` seconds have passed)."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout_so_far() and self.process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess:
        self.process.join(timeout)
        timed_out = self.process.exitcode is None
        if timed_out:
            self.process.kill()
            self.process.join()
        stdout, stderr = self.out.read_text(), self.err.read_text()
        self.files.cleanup()
        if timed_out:
            raise subprocess.TimeoutExpired(self.command, timeout, stdout, stderr)
        return subprocess.CompletedProcess(self.command, self.process.exitcode, stdout, stderr)


def start_script(name: str, *args: str, setup=None) -> Started:
    """`python NAME.py ARGS` (NAME relative to the repository) started in a process forked from the warm
    one; `setup` (a module-level function) runs first in that process, as subprocess's preexec_fn."""
    return Started(str(ROOT / f"{name}.py"), list(args), setup, tempfile.TemporaryDirectory())


def run_script(name: str, *args: str, timeout: int = 300, fresh: bool = False,
               setup=None) -> subprocess.CompletedProcess:
    if fresh:
        return subprocess.run([sys.executable, str(ROOT / f"{name}.py"), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, preexec_fn=setup)
    return start_script(name, *args, setup=setup).wait(timeout)


def torchrun(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 SCRIPT.py ARGS`: the launcher forked from the warm process,
    the two processes it starts new interpreters, as torchrun's are."""
    launch = ["--standalone", "--nproc_per_node", "2", str(ROOT / f"{script}.py"), *args]
    return Started("torch.distributed.run", launch, None, tempfile.TemporaryDirectory()).wait(timeout)


def run_code(code: str, timeout: int = 300, setup=None) -> subprocess.CompletedProcess:
    """`python -c CODE` in the repository, forked from the warm process as run_script's runs are."""
    files = tempfile.TemporaryDirectory()
    script = Path(files.name) / "code.py"
    script.write_text(code)
    return Started(str(script), [], setup, files).wait(timeout)


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of the single run under log_dir, as {tag: [(step, value), ...]}."""
    (run_dir,) = [p for p in log_dir.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def read_images(log_dir: Path, tag: str) -> list[tuple[int, np.ndarray]]:
    """The grayscale images logged under `tag` by the single run under log_dir, as [(step, (H, W) uint8), ...]
    (TensorBoard stores them as RGB with three equal channels)."""
    (run_dir,) = [p for p in log_dir.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    images = [(e.step, np.array(Image.open(io.BytesIO(e.encoded_image_string)))) for e in events.Images(tag)]
    assert all((image == image[..., :1]).all() for _, image in images)
    return [(step, image[..., 0]) for step, image in images]


@pytest.fixture(scope="session")
def rf():
    return load_script("curiosity_rf")
