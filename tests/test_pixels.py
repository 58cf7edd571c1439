"""Behaviour of curiosity_pixels.py: the features are the normalised frames, and the forward model is the
reference's U-Net. The U-Net is checked against an independent re-statement of the reference's layers
that derives every padding from TensorFlow's padding="same" rules."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, load_script, read_images, read_scalars, run_script
from test_rf import EPISODE_TAGS, SPEC_TAGS


@pytest.fixture(scope="module")
def px():
    return load_script("curiosity_pixels")


# ---------------------------------------------------------------- an independent statement of the reference U-Net
def tf_same_conv(x, weight, bias, stride):
    """tf.layers.conv2d(padding="same"): ceil(n / stride) pixels; the extra zero goes after."""
    n, k = x.shape[-1], weight.shape[-1]
    total = max((-(-n // stride) - 1) * stride + k - n, 0)
    return F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), weight, bias, stride)


def tf_same_deconv(x, weight, bias, stride):
    """tf.layers.conv2d_transpose(padding="same"): n * stride pixels cut from the full output."""
    n, k = x.shape[-1], weight.shape[-1]
    full = F.conv_transpose2d(x, weight, bias, stride)  # (n - 1) * stride + k pixels
    before = max(k - stride, 0) // 2
    return full[..., before:before + n * stride, before:before + n * stride]


def reference_unet(model, x, actions, num_actions):
    """utils.unet of the reference code, written from its source, with the model's weights."""
    ac = F.one_hot(actions, num_actions).float()

    def cond(h):
        if h.dim() == 2:
            return torch.cat([h, ac], 1)
        return torch.cat([h, ac[:, :, None, None] * torch.ones(1, 1, *h.shape[2:])], 1)

    def nl(h):
        return F.leaky_relu(h, 0.2)

    def dense(layer, h):
        return cond(h) @ layer.weight.T + layer.bias

    layers = []
    x = F.pad(x, (6, 6, 6, 6))
    for conv, stride, size in ((model.conv1, 3, 32), (model.conv2, 2, 16), (model.conv3, 2, 8)):
        x = nl(tf_same_conv(cond(x), conv.weight, conv.bias, stride))
        assert x.shape[-2:] == (size, size)
        layers.append(x)
    x = nl(dense(model.fc_in, x.flatten(1)))
    for dense1, dense2 in model.blocks:
        x = x + dense(dense2, nl(dense(dense1, x)))
    x = nl(dense(model.fc_out, x)).view(-1, 64, 8, 8) + layers.pop()
    for deconv, size in ((model.deconv1, 16), (model.deconv2, 32)):
        x = nl(tf_same_deconv(cond(x), deconv.weight, deconv.bias, 2))
        assert x.shape[-2:] == (size, size)
        x = x + layers.pop()
    x = tf_same_deconv(cond(x), model.deconv3.weight, model.deconv3.bias, 3)
    assert x.shape[-2:] == (96, 96)
    return x[:, :, 6:-6, 6:-6]


@pytest.mark.parametrize("num_actions", [4, 18])
def test_unet_matches_the_reference_layers_and_keeps_the_frame_shape(px, num_actions):
    torch.manual_seed(0)
    model = px.ForwardModel(512, num_actions)
    x = torch.randn(3, 4, 84, 84)
    actions = torch.tensor([0, num_actions - 1, 2])
    prediction = model(x, actions)
    assert prediction.shape == (3, 4, 84, 84)
    with torch.no_grad():
        expected = reference_unet(model, x, actions, num_actions)
    torch.testing.assert_close(prediction, expected, rtol=1e-4, atol=1e-4)
    assert prediction.abs().mean() > 0.1  # not a trivial output


def test_action_reaches_every_layer(px):
    A = 5
    torch.manual_seed(0)
    model = px.ForwardModel(32, A, num_blocks=2)
    convs = [model.conv1, model.conv2, model.conv3]
    deconvs = [model.deconv1, model.deconv2, model.deconv3]
    dense = [model.fc_in, *[d for block in model.blocks for d in block], model.fc_out]
    assert [c.in_channels for c in convs] == [4 + A, 32 + A, 64 + A]
    assert [c.in_channels for c in deconvs] == [64 + A, 64 + A, 32 + A]
    assert [c.out_channels for c in convs + deconvs] == [32, 64, 64, 64, 32, 4]
    assert [d.in_features for d in dense] == [64 * 8 * 8 + A] + [32 + A] * 4 + [32 + A]
    assert dense[-1].out_features == 64 * 8 * 8

    # What every layer receives: its last A input channels (features) are the one-hot of the action
    inputs = {}
    hooks = [layer.register_forward_pre_hook(lambda m, args, name=i: inputs.__setitem__(name, args[0]))
             for i, layer in enumerate(convs + deconvs + dense)]
    actions = torch.tensor([3, 1])
    x = torch.randn(2, 4, 84, 84)
    model(x, actions)
    for h in hooks:
        h.remove()
    onehot = F.one_hot(actions, A).float()
    for i, received in inputs.items():
        tiles = received[:, -A:]
        if i == 0:  # conv1: 84 padded to 96 (6 + 6), then TensorFlow's "same" zeros 2 before and 3 after
            assert received.shape[-2:] == (101, 101)
            assert torch.all(tiles[:, :, 2:98, 2:98] == onehot[:, :, None, None])
            assert tiles[:, :, :2].abs().sum() == 0 and tiles[:, :, 98:].abs().sum() == 0
            assert received[:, :4, :8].abs().sum() == 0 and received[:, :4, 8:92, 8:92].equal(x)
        elif tiles.dim() == 4:
            assert torch.all(tiles == onehot[:, :, None, None]), f"layer {i}"
        else:
            assert torch.equal(tiles, onehot), f"layer {i}"

    # And it changes the prediction
    torch.testing.assert_close(model(x, actions), model(x, actions))
    assert not torch.allclose(model(x, actions), model(x, torch.tensor([0, 1])))


def test_reference_initialisation(px):
    torch.manual_seed(0)
    model = px.ForwardModel(512, 4)
    for fc in (model.fc_in, model.fc_out):  # the reference's `fc` helper: normc
        torch.testing.assert_close(fc.weight.norm(dim=1), torch.ones(fc.out_features))
    glorot = [model.conv1, model.conv2, model.conv3, model.deconv1, model.deconv2, model.deconv3,
              *[d for block in model.blocks for d in block]]
    for layer in glorot:  # Glorot uniform: |w| <= sqrt(6 / (fan_in + fan_out)), and spread up to the bound
        w = layer.weight
        receptive = w[0, 0].numel()
        bound = (6 / ((w.shape[0] + w.shape[1]) * receptive)) ** 0.5
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    for layer in glorot + [model.fc_in, model.fc_out]:
        assert torch.all(layer.bias == 0)


# ---------------------------------------------------------------- features and reward
def test_features_are_the_normalised_frames(px):
    phi = px.Features(512, 4)
    assert not px.Features.cache and not list(phi.parameters())
    x = torch.randn(3, 2, 4, 84, 84)
    features, aux_loss, stats = phi.loss(x, torch.zeros(2, 2, dtype=torch.long))
    assert torch.equal(features, x) and aux_loss.item() == 0 and stats == {}
    assert torch.equal(px.apply_flat(phi, x), x)


def test_forward_loss_never_reaches_the_features_input(px):
    torch.manual_seed(0)
    forward_model = px.ForwardModel(64, 3, num_blocks=1)
    features = torch.randn(3, 2, 4, 84, 84, requires_grad=True)  # (T+1, n) normalised frames
    actions = torch.randint(3, (2, 2))
    px.prediction_error(forward_model, features, actions).mean().backward()
    assert features.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in forward_model.parameters())


def test_reward_is_mean_over_pixels_and_channels_of_squared_error(px):
    torch.manual_seed(0)
    forward_model = px.ForwardModel(64, 3, num_blocks=1)
    features = torch.randn(3, 2, 4, 84, 84)  # (T+1, n)
    actions = torch.tensor([[0, 2], [1, 1]])
    reward = px.prediction_error(forward_model, features, actions)
    assert reward.shape == (2, 2)
    with torch.no_grad():
        for t in range(2):
            for e in range(2):
                pred = forward_model(features[t, e][None], actions[t, e][None])[0]
                expected = ((pred - features[t + 1, e]) ** 2).sum() / (4 * 84 * 84)
                assert reward[t, e].item() == pytest.approx(expected.item(), rel=1e-5)
    assert reward[0, 0] != reward[0, 1]


# ---------------------------------------------------------------- end to end
def test_two_iterations_on_breakout_log_every_metric_and_predictions(tmp_path):
    result = run_script("curiosity_pixels", *TINY, "--save-predictions", "--log-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "iter 2/2 step 128 frames 512" in result.stdout
    scalars = read_scalars(tmp_path)
    missing = SPEC_TAGS - EPISODE_TAGS - set(scalars)
    assert not missing, f"missing tags: {missing}"
    assert [step for step, _ in scalars["losses/policy_loss"]] == [64, 128]
    assert all(np.isfinite(v) for tag in scalars for _, v in scalars[tag])
    assert scalars["charts/intrinsic_reward_mean"][0][1] > 0
    assert scalars["losses/dynamics_loss"][0][1] > 0
    assert scalars["charts/feature_std"][0][1] > 0

    ((step, image),) = read_images(tmp_path, "predictions")
    assert step == 128  # the last iteration always logs one
    assert image.shape == (2 * 84, 4 * 84)  # 4 envs side by side, 2 rows: next frame, prediction
    assert image[:84, :84].std() > 0  # a real frame, not a blank cell


def test_prediction_interval_must_be_positive(tmp_path):
    result = run_script("curiosity_pixels", *TINY, "--prediction-interval", "0", "--log-dir", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--prediction-interval must be between 1 and 2,147,483,647, got 0" in result.stderr
    help_text = run_script("curiosity_pixels", "--help").stdout
    assert "--save-predictions" in help_text and "U-Net" in help_text
