"""Helpers shared by the tests: load a script as a module, run it as a user would, read its logs."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import load_script  # noqa: E402  (one loader for tests and benchmarks)
# Tiny but real: a real Atari game, two iterations of every phase of the loop.
TINY = ["--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "2",
        "--obs-norm-steps", "64", "--total-timesteps", "128"]


def reference_frame_stack(frames: list, dones: list, num_frames: int = 4) -> np.ndarray:
    """The reference's FrameStack, built from single frames: frames[t] is (N, 1, H, W), frames[0] the reset's,
    dones[t] the episode ends of step t. An episode's k-th stack is [f0] * (3 - k) + [f0 .. fk]."""
    episodes, stacks = [[frame] for frame in frames[0]], []
    for t, step_frames in enumerate(frames):
        if t > 0:
            episodes = [[f] if dones[t - 1][i] else episodes[i] + [f] for i, f in enumerate(step_frames)]
        stacks.append([np.concatenate([ep[0]] * max(0, num_frames - len(ep)) + ep[-num_frames:]) for ep in episodes])
    return np.array(stacks)


def run_script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


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
