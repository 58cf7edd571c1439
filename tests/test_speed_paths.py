"""The opt-in speed paths (bfloat16 autocast, envs stepped in parts, phase timing) of every script: what
they may and may not change."""
import time

import numpy as np
import pytest
import torch

from conftest import TINY, load_script, read_scalars, run_script

SCRIPTS = ["curiosity_rf", "curiosity_idf", "curiosity_vae", "curiosity_pixels", "curiosity_extrinsic_mix"]
PHASES = {"inference", "env", "rewards", "update"}


def test_networks_hand_float32_to_the_losses_under_bf16_autocast(rf):
    torch.manual_seed(0)
    policy, phi, forward_model = rf.Policy(4), rf.Features(32, 4), rf.ForwardModel(32, 4, hidden=64, num_blocks=1)
    x = torch.randn(3, 2, 4, 84, 84)
    actions = torch.randint(0, 4, (2, 2))
    with torch.autocast("cpu", torch.bfloat16):
        logits, value = policy(x[0])
        features = rf.apply_flat(phi, x)
        error = rf.prediction_error(forward_model, features, actions)
    assert features.dtype == torch.bfloat16  # the networks did run in bfloat16...
    assert logits.dtype == value.dtype == error.dtype == torch.float32  # ...but log-probs, values, rewards do not
    with torch.no_grad():
        reference = rf.prediction_error(forward_model, rf.apply_flat(phi, x), actions)
    torch.testing.assert_close(error, reference, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("supported", [False, True])
def test_bf16_warns_on_a_cpu_without_bfloat16_units(rf, monkeypatch, capsys, supported):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: supported)
    for bf16 in (False, True):
        assert rf.setup_torchrun(rf.Args(bf16=bf16, cuda=False)) == (0, 1, torch.device("cpu"))
    warned = "warning: this CPU has no bfloat16 units" in capsys.readouterr().out
    assert warned == (not supported)


def test_phase_timer_charges_each_lap_to_its_phase(rf):
    timer = rf.PhaseTimer(sync=False)
    for _ in range(2):
        time.sleep(0.02)
        timer.lap("a")
        time.sleep(0.05)
        timer.lap("b")
    assert list(timer.seconds) == ["a", "b"]
    assert 0.04 <= timer.seconds["a"] < 0.09 and 0.1 <= timer.seconds["b"] < 0.2


def test_profile_prints_and_logs_every_phase(tmp_path):
    result = run_script("curiosity_rf", *TINY, "--profile", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  seconds:")]
    assert len(lines) == 2 and all(f"{phase} " in lines[0] for phase in PHASES)
    scalars = read_scalars(tmp_path)
    for phase in PHASES:
        values = [v for _, v in scalars[f"charts/{phase}_seconds"]]
        assert len(values) == 2 and all(v > 0 for v in values)


@pytest.mark.parametrize("name", SCRIPTS)
def test_bf16_runs_end_to_end_close_to_float32(name, tmp_path):
    first = {}
    for precision in ("fp32", "bf16"):
        flags = ["--bf16"] if precision == "bf16" else []
        env = ["--env-id", "BreakoutNoFrameskip-v4"] if name == "curiosity_extrinsic_mix" else []
        result = run_script(name, *TINY, *env, *flags, "--seed", "2", "--log-dir", str(tmp_path / precision))
        assert result.returncode == 0, result.stderr
        scalars = read_scalars(tmp_path / precision)
        assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])
        first[precision] = {tag: values[0][1] for tag, values in scalars.items()}
    # The rollout is the same until the policies' bfloat16 rounding picks a different action; the first
    # intrinsic rewards come from the same frames only where no action differed, so compare loosely.
    for tag in ("losses/dynamics_loss", "charts/intrinsic_reward_mean", "charts/feature_std"):
        assert first["bf16"][tag] == pytest.approx(first["fp32"][tag], rel=0.25), tag


# ---------------------------------------------------------------- --env-parts
def test_envs_stepped_in_two_parts_give_the_frames_rewards_and_episodes_of_one_vector_env(rf):
    """The same seeds and actions: two halves stepped at once with send/recv, as in the rollout, and one
    vector env of all 8 envs agree on every frame, reward and episode end, and on the episode statistics."""
    rng = np.random.default_rng(0)
    whole = rf.make_envs("BreakoutNoFrameskip-v4", 8, max_episode_steps=60)  # 60: many episode ends
    halves = [rf.make_envs("BreakoutNoFrameskip-v4", 4, max_episode_steps=60) for _ in range(2)]
    parts = [slice(0, 4), slice(4, 8)]
    first = whole.reset(seed=3)[0]
    in_parts = [half.reset(seed=3 + 4 * k)[0] for k, half in enumerate(halves)]  # env i: seed 3 + i
    np.testing.assert_array_equal(first, np.concatenate(in_parts))
    stats_whole, stats_parts, ends = rf.EpisodeStats(8), rf.EpisodeStats(8), 0
    for _ in range(150):
        actions = rng.integers(4, size=8)
        expected = whole.step(actions)
        for part, half in zip(parts, halves):
            half.send(actions[part])  # the second half starts before the first is received
        got = [half.recv() for half in halves]
        for x, *y in zip(expected[:4], *(g[:4] for g in got)):  # frames, rewards, terminated, truncated
            np.testing.assert_array_equal(x, np.concatenate(y))
        finished = stats_whole.update(*expected[1:4])
        finished_parts = [stats_parts.update(*g[1:4], part) for part, g in zip(parts, got)]
        np.testing.assert_array_equal(finished[0], np.concatenate([returns for returns, _ in finished_parts]))
        ends += int((expected[2] | expected[3]).sum())
    assert ends >= 16
    np.testing.assert_array_equal(stats_whole.returns, stats_parts.returns)
    np.testing.assert_array_equal(stats_whole.lengths, stats_parts.lengths)
    assert list(stats_whole.recent_returns) == list(stats_parts.recent_returns)
    for envs in (whole, *halves):
        envs.close()


@pytest.mark.parametrize("name", ["curiosity_rf", "curiosity_idf"])
def test_a_run_with_its_envs_in_two_parts_computes_what_one_vector_env_does(name, tmp_path):
    """Same frames for the same actions, and on the CPU the same actions too: torch draws each half's
    samples from the one stream in the order one batch would. The policy's values and log-probs on half
    a batch may differ from the whole batch's in the last bit (another conv blocking), hence the losses'
    tolerance."""
    logged = {}
    for parts in ("1", "2"):
        result = run_script(name, *TINY, "--env-parts", parts, "--max-episode-steps", "20",
                            "--log-dir", str(tmp_path / parts))
        assert result.returncode == 0, result.stderr
        scalars = read_scalars(tmp_path / parts)
        logged[parts] = {tag: values for tag, values in scalars.items() if not tag.endswith(("SPS", "_seconds"))}
    assert [step for step, _ in logged["2"]["losses/dynamics_loss"]] == [64, 128]
    assert logged["2"]["charts/episodic_return"]  # a 20-step cap: episodes of both halves end in iteration 2
    for tag, values in logged["1"].items():
        if tag.startswith("losses/"):
            steps, numbers = zip(*values)
            assert [step for step, _ in logged["2"][tag]] == list(steps), tag
            assert [v for _, v in logged["2"][tag]] == pytest.approx(numbers, rel=1e-4), tag
        else:  # what the actions decide: frames, game and intrinsic rewards, episodes
            assert logged["2"][tag] == values, tag
