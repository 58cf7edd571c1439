"""Behaviour of curiosity_vae.py: the VAE's shapes, its loss and where its gradients go, checked on small
batches; the end-to-end test runs the real script on a real Atari game."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, load_script, read_images, read_scalars, run_script
from test_rf import EPISODE_TAGS, SPEC_TAGS

VAE_TAGS = {"losses/aux_loss", "losses/reconstruction_nll", "losses/kl", "charts/decoder_std"}


@pytest.fixture(scope="module")
def vae():
    return load_script("curiosity_vae")


def square_frames(num_frames: int, num_envs: int) -> torch.Tensor:
    """Raw frames in 0..255: a bright square on a dark background, at a different place in each frame."""
    raw = torch.full((num_frames, num_envs, 4, 84, 84), 40.0)
    g = torch.Generator().manual_seed(0)
    for t in range(num_frames):
        for e in range(num_envs):
            r, c = torch.randint(0, 64, (2,), generator=g).tolist()
            raw[t, e, :, r:r + 20, c:c + 20] = 200.0
    return raw


# ---------------------------------------------------------------- networks
def test_decoder_reproduces_tensorflow_same_padding_and_gives_84x84(vae):
    torch.manual_seed(0)
    phi = vae.Features(32, 4)
    sizes = []
    for layer in phi.decoder:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            layer.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    out = phi.decode(torch.randn(3, 32))
    assert out.shape == (3, 4, 84, 84)
    # 8 -> 16 -> 32 -> 96 in TensorFlow; torch's last deconv gives one extra row and column (97), dropped
    assert sizes == [(128, 16, 16), (64, 32, 32), (4, 97, 97)]
    # TF's 'same' keeps rows 2..97 of the full 101-row output of the last deconv; the crop drops 6 more on each side
    assert torch.all(phi.pixel_bias == 0) and phi.pixel_bias.shape == (4, 84, 84)
    z = torch.randn(2, 32)
    with torch.no_grad():
        phi.pixel_bias.normal_()
        last = phi.decoder[-1]
        full = F.conv_transpose2d(phi.decoder[:-1](z), last.weight, last.bias, stride=3)
        assert full.shape[-2:] == (101, 101)
        tf_same = full[..., 2:98, 2:98]
        torch.testing.assert_close(phi.decode(z), tf_same[..., 6:-6, 6:-6] + phi.pixel_bias)
    assert phi.decoder_std().item() == pytest.approx(math.log1p(math.e))  # softplus(1.0)
    with torch.no_grad():
        phi.decoder_scale.fill_(-10.0)
    assert phi.decoder_std().item() == pytest.approx(math.log1p(math.exp(-4.0)))  # floored at -4 before softplus
    norms = phi.decoder[0].weight.norm(dim=1)  # normc on the dense layer
    torch.testing.assert_close(norms, torch.ones(64 * 8 * 8))
    slopes = [m.negative_slope for m in phi.decoder if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2, 0.2, 0.2]


def test_features_are_the_posterior_mean(vae):
    torch.manual_seed(0)
    phi = vae.Features(16, 4)
    x = torch.randn(3, 2, 4, 84, 84)
    features, _, _ = phi.loss(x, torch.zeros(2, 2, dtype=torch.long))
    mu = vae.apply_flat(phi.encoder, x)[..., :16]
    torch.testing.assert_close(features, mu)
    torch.testing.assert_close(vae.apply_flat(phi, x), mu)  # what the reward sees: mu, not a sample
    assert features.shape == (3, 2, 16) and not vae.Features.cache


def test_kl_is_zero_when_the_posterior_is_the_prior_and_positive_otherwise(vae):
    torch.manual_seed(0)
    dim = 8
    phi = vae.Features(dim, 4)
    x = torch.randn(3, 2, 4, 84, 84)
    actions = torch.zeros(2, 2, dtype=torch.long)
    out = phi.encoder[-1]
    with torch.no_grad():  # every input gives mu = 0 and std = softplus(s) = 1
        out.weight.zero_()
        out.bias[:dim] = 0.0
        out.bias[dim:] = math.log(math.e - 1)
    _, loss, stats = phi.loss(x, actions)
    assert stats["losses/kl"].item() == pytest.approx(0.0, abs=1e-5)
    assert loss.item() == pytest.approx(stats["losses/reconstruction_nll"].item(), rel=1e-6)
    with torch.no_grad():  # mu = 0.5, std = 1 on every dim: KL = dim * 0.5 * 0.5^2
        out.bias[:dim] = 0.5
    _, loss, stats = phi.loss(x, actions)
    assert stats["losses/kl"].item() == pytest.approx(dim * 0.125, rel=1e-5)
    with torch.no_grad():  # mu = 0, std = 2: KL = dim * (0.5 * (4 - 1) - log 2)
        out.bias[:dim] = 0.0
        out.bias[dim:] = math.log(math.exp(2.0) - 1)
    _, loss, stats = phi.loss(x, actions)
    assert stats["losses/kl"].item() == pytest.approx(dim * (1.5 - math.log(2.0)), rel=1e-5)


def test_reconstruction_nll_is_a_gaussian_summed_over_pixels(vae):
    torch.manual_seed(0)
    phi = vae.Features(8, 4)
    with torch.no_grad():  # decoder mean 0 everywhere, decoder std softplus(1)
        for p in phi.decoder.parameters():
            p.zero_()
    phi.ob_std.fill_(1e6)  # dequantisation noise U(0, 1) / ob_std vanishes
    x = torch.randn(3, 2, 4, 84, 84)
    _, loss, stats = phi.loss(x, torch.zeros(2, 2, dtype=torch.long))
    std = math.log1p(math.e)
    per_frame = (0.5 * (x[:-1] / std) ** 2 + math.log(std) + 0.5 * math.log(2 * math.pi)).flatten(2).sum(-1)
    assert stats["losses/reconstruction_nll"].item() == pytest.approx(per_frame.mean().item(), rel=1e-4)
    assert stats["charts/decoder_std"].item() == pytest.approx(std)
    assert loss.item() == pytest.approx(stats["losses/reconstruction_nll"].item() + stats["losses/kl"].item(), rel=1e-5)
    # the current frames x[:-1] are the targets, not the last one: changing x[-1] leaves the NLL alone
    x2 = x.clone()
    x2[-1] += 5.0
    torch.manual_seed(1)
    _, _, a = phi.loss(x, torch.zeros(2, 2, dtype=torch.long))
    torch.manual_seed(1)
    _, _, b = phi.loss(x2, torch.zeros(2, 2, dtype=torch.long))
    assert a["losses/reconstruction_nll"].item() == pytest.approx(b["losses/reconstruction_nll"].item(), rel=1e-6)


def test_vae_loss_trains_encoder_and_decoder_but_the_forward_loss_reaches_neither(vae):
    torch.manual_seed(0)
    num_actions, dim = 4, 16
    phi, forward_model, policy = vae.Features(dim, num_actions), vae.ForwardModel(dim, num_actions), vae.Policy(num_actions)
    assert {id(p) for p in phi.parameters()}.isdisjoint(id(p) for p in policy.parameters())
    x = torch.randn(3, 2, 4, 84, 84)
    actions = torch.randint(num_actions, (2, 2))

    features, aux_loss, _ = phi.loss(x, actions)
    vae.prediction_error(forward_model, features, actions).mean().backward()
    assert all(p.grad is None for p in phi.parameters()), "the forward loss reached phi"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in forward_model.parameters())

    aux_loss.backward()
    for name, p in phi.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no VAE gradient on {name}"
    assert any(n.startswith("encoder.") for n, _ in phi.named_parameters())
    assert any(n.startswith("decoder.") for n, _ in phi.named_parameters())


def test_vae_loss_falls_on_a_fixed_batch(vae):
    torch.manual_seed(0)
    raw = square_frames(3, 1)
    mean, std = raw.mean((0, 1)), raw.std((0, 1)).mean()
    phi = vae.Features(8, 4)
    phi.ob_std.fill_(float(std))
    x = (raw - mean) / std
    actions = torch.zeros(2, 1, dtype=torch.long)
    optimizer = torch.optim.Adam(phi.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        _, loss, _ = phi.loss(x, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


# ---------------------------------------------------------------- pictures and arguments
def test_reconstruction_image_shows_frames_above_their_reconstructions(vae, tmp_path):
    torch.manual_seed(0)
    raw = square_frames(1, 3)[0].to(torch.uint8)  # (3, 4, 84, 84)
    norm = vae.ObservationNorm(raw.float().mean(0).numpy(), float(raw.float().std(0).mean()))
    phi = vae.Features(8, 4)
    writer = vae.SummaryWriter(tmp_path / "run")
    vae.save_reconstructions(writer, phi, norm, raw, 7)
    writer.close()
    ((step, image),) = read_images(tmp_path, "reconstructions")
    assert step == 7 and image.shape == (2 * 84, 3 * 84) and image.dtype == np.uint8  # 2 rows of 3 cells
    for i in range(3):  # the top row is the newest raw frame of each stack
        np.testing.assert_array_equal(image[:84, i * 84:(i + 1) * 84], raw[i, -1].numpy())
    with torch.no_grad():
        expected = phi.decode(phi(norm(raw))) * norm.std + norm.mean
    np.testing.assert_allclose(image[84:, :84].astype(np.float32), expected[0, -1].clamp(0, 255).numpy(), atol=0.51)


def test_reconstruction_interval_must_be_positive(vae):
    with pytest.raises(SystemExit, match="--reconstruction-interval must be between 1 and 2,147,483,647, got 0"):
        vae.check_args(vae.Args(reconstruction_interval=0))


# ---------------------------------------------------------------- end to end
def test_two_iterations_on_breakout_log_every_metric_and_reconstructions(tmp_path):
    result = run_script("curiosity_vae", *TINY, "--seed", "3", "--log-dir", str(tmp_path),
                        "--save-reconstructions", "--reconstruction-interval", "1")
    assert result.returncode == 0, result.stderr
    assert "iter 2/2 step 128 frames 512" in result.stdout
    scalars = read_scalars(tmp_path)
    missing = (SPEC_TAGS - EPISODE_TAGS | VAE_TAGS) - set(scalars)
    assert not missing, f"missing tags: {missing}"
    assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])
    assert [step for step, _ in scalars["losses/aux_loss"]] == [64, 128]
    for (_, aux), (_, nll), (_, kl) in zip(scalars["losses/aux_loss"], scalars["losses/reconstruction_nll"],
                                           scalars["losses/kl"]):
        assert aux == pytest.approx(nll + kl, rel=1e-4) and kl > 0 and nll > 0
    assert scalars["charts/decoder_std"][0][1] == pytest.approx(math.log1p(math.e), rel=0.05)
    assert scalars["charts/intrinsic_reward_mean"][0][1] > 0 and scalars["losses/dynamics_loss"][0][1] > 0

    images = read_images(tmp_path, "reconstructions")
    assert [step for step, _ in images] == [64, 128]
    assert images[-1][1].shape == (2 * 84, 4 * 84)  # 4 envs: 4 frames above their 4 reconstructions
    assert images[-1][1][:84].std() > 10  # a Breakout frame, not a blank


def test_help_documents_the_vae_arguments():
    result = run_script("curiosity_vae", "--help")
    assert result.returncode == 0
    assert "--save-reconstructions" in result.stdout and "--reconstruction-interval" in result.stdout
