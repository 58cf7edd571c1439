"""Behaviour of curiosity_idf.py: the inverse-dynamics features are trained by their own loss only, they
learn to tell actions apart, and the real script logs the inverse metrics on a real Atari game."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, load_script, read_scalars, run_script
from test_rf import EPISODE_TAGS, SPEC_TAGS


@pytest.fixture(scope="module")
def idf():
    return load_script("curiosity_idf")


def moving_square(T: int, n: int, generator: torch.Generator):
    """(T+1, n, 4, 84, 84) frames of a bright square on noise, moved by each action, and the (T, n) actions.
    Action 0 keeps it still, 1/2/3 move it right/left/down by 6 pixels (wrapping), so each action is readable."""
    moves = torch.tensor([[0, 0], [0, 6], [0, -6], [6, 0]])
    actions = torch.randint(4, (T, n), generator=generator)
    pos = torch.randint(0, 77, (n, 2), generator=generator)
    frames = 0.3 * torch.randn(T + 1, n, 84, 84, generator=generator)
    for t in range(T + 1):
        for e in range(n):
            frames[t, e, pos[e, 0]:pos[e, 0] + 8, pos[e, 1]:pos[e, 1] + 8] += 2.0
        if t < T:
            pos = (pos + moves[actions[t]]) % 77
    return frames[:, :, None].repeat(1, 1, 4, 1, 1), actions


def test_inverse_head_is_the_reference_architecture(idf):
    torch.manual_seed(0)
    phi = idf.Features(32, 6)
    assert idf.Features.cache is False  # learned features must be recomputed in the update
    first, relu, last = phi.inverse
    assert (first.in_features, first.out_features, last.out_features) == (64, 512, 6)  # concat of two phis
    assert isinstance(relu, torch.nn.ReLU)
    for layer in (first, last):  # normc init, zero biases
        torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(layer.out_features))
        assert torch.all(layer.bias == 0)
    assert all(p.requires_grad for p in phi.parameters())  # unlike random features, the encoder trains


def test_loss_is_cross_entropy_of_the_taken_action_and_accuracy_counts_hits(idf):
    torch.manual_seed(0)
    phi = idf.Features(16, 3)
    x = torch.randn(4, 2, 4, 84, 84)  # (T+1, n) normalised frames
    actions = torch.tensor([[0, 1], [2, 2], [1, 0]])
    features, loss, stats = phi.loss(x, actions)
    assert features.shape == (4, 2, 16) and features.requires_grad
    torch.testing.assert_close(features, idf.apply_flat(phi, x))  # same features as phi(x) in the reward pass
    # By hand, transition by transition: logits from [phi(o_t), phi(o_{t+1})], then -log softmax[a_t]
    nll, hits = [], []
    for t in range(3):
        for e in range(2):
            logits = phi.inverse(torch.cat([phi(x[t, e][None]), phi(x[t + 1, e][None])], dim=-1))[0]
            nll.append(-F.log_softmax(logits, -1)[actions[t, e]])
            hits.append(float(logits.argmax() == actions[t, e]))
    assert loss.item() == pytest.approx(torch.stack(nll).mean().item(), rel=1e-5)
    assert set(stats) == {"losses/aux_loss", "charts/inverse_accuracy"}
    assert stats["losses/aux_loss"].item() == pytest.approx(loss.item())
    assert stats["charts/inverse_accuracy"].item() == pytest.approx(np.mean(hits))


def test_inverse_loss_trains_encoder_and_head_and_forward_loss_reaches_neither(idf):
    torch.manual_seed(0)
    num_actions, dim = 4, 32
    phi, forward_model = idf.Features(dim, num_actions), idf.ForwardModel(dim, num_actions)
    x = torch.randn(6, 3, 4, 84, 84, requires_grad=True)
    actions = torch.randint(num_actions, (5, 3))
    features, inverse_loss, _ = phi.loss(x, actions)

    # Forward loss alone: it trains the forward model and leaves the encoder and the inverse head untouched
    idf.prediction_error(forward_model, features, actions).mean().backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in forward_model.parameters())
    assert all(p.grad is None or not p.grad.any() for p in phi.parameters())
    assert x.grad is None

    # Inverse loss alone: every parameter of the encoder and the head gets a gradient
    inverse_loss.backward()
    for name, p in phi.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no inverse-loss gradient on {name}"
    # ... through both ends of a transition: o_0 is only ever a "before" frame, o_5 only an "after" frame
    assert x.grad[0].abs().sum() > 0 and x.grad[-1].abs().sum() > 0


def test_inverse_accuracy_rises_well_above_chance_after_a_few_dozen_updates(idf):
    torch.manual_seed(0)
    x, actions = moving_square(8, 4, torch.Generator().manual_seed(0))  # 32 transitions, 4 actions
    phi = idf.Features(64, 4)
    optimizer = torch.optim.Adam(phi.parameters(), lr=1e-4, eps=1e-8)  # the script's optimizer settings
    with torch.no_grad():
        _, first_loss, first = phi.loss(x, actions)
    for _ in range(30):
        _, loss, _ = phi.loss(x, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        _, last_loss, last = phi.loss(x, actions)
    chance = 1 / 4
    before, after = first["charts/inverse_accuracy"].item(), last["charts/inverse_accuracy"].item()
    assert before < 0.5, before
    assert after >= 0.8, f"inverse accuracy {after:.2f} after 30 updates (chance {chance}, before {before:.2f})"
    assert last_loss.item() < 0.7 * first_loss.item() and last_loss.item() < np.log(4)  # beats a uniform guess


def test_two_iterations_on_breakout_log_every_metric(tmp_path):
    result = run_script("curiosity_idf", *TINY, "--seed", "3", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "iter 2/2 step 128 frames 512" in result.stdout
    scalars = read_scalars(tmp_path)
    expected = SPEC_TAGS - EPISODE_TAGS
    expected |= {"losses/aux_loss", "charts/inverse_accuracy"}
    missing = expected - set(scalars)
    assert not missing, f"missing tags: {missing}"
    assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])
    assert [step for step, _ in scalars["losses/aux_loss"]] == [64, 128]
    assert all(v > 0 for _, v in scalars["losses/aux_loss"])
    assert all(0 <= v <= 1 for _, v in scalars["charts/inverse_accuracy"])
    assert all(v > 0 for _, v in scalars["charts/intrinsic_reward_mean"])
