"""Camera head: iterations, adaLN form, FoV activation, pose-encoding round trip of its outputs."""

import math

import pytest
import torch

from recon.geometry import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from recon.heads.camera_head import CameraHead, activate_pose


def _head():
    torch.manual_seed(0)
    head = CameraHead(32, trunk_depth=2, num_heads=4, iterations=4).eval()
    with torch.no_grad():
        head.pose_branch.fc2.weight[7:] *= 0.01  # FoV ≈ 4 iterations × 0.3 rad, well inside (0, π)
        head.pose_branch.fc2.bias[7:] = 0.3
    return head


def test_outputs_one_pose_per_iteration():
    head = _head()
    with torch.no_grad():
        poses = head(torch.randn(2, 5, 9, 32))
    assert len(poses) == 4 and all(p.shape == (2, 5, 9) for p in poses)
    assert len(head(torch.randn(1, 2, 3, 32), iterations=2)) == 2


def test_activation_linear_translation_quaternion_relu_fov():
    x = torch.tensor([[-1.0, 2, -3, 0.1, -0.2, 0.3, -0.4, -0.5, 0.6]])
    out = activate_pose(x)
    assert torch.equal(out[:, :7], x[:, :7])
    assert out[0, 7].item() == 0.0 and math.isclose(out[0, 8].item(), 0.6, rel_tol=1e-6)


def test_first_iteration_uses_empty_pose_and_only_camera_token():
    head = _head()
    tokens = torch.randn(1, 3, 6, 32)
    other = tokens.clone()
    other[:, :, 1:] = torch.randn_like(other[:, :, 1:])  # non-camera tokens must not matter
    with torch.no_grad():
        a, b = head(tokens), head(other)
        for pa, pb in zip(a, b):
            torch.testing.assert_close(pa, pb)
        t = head.token_norm(tokens[:, :, 0])
        cond = head.embed_pose(head.empty_pose_tokens.expand(1, 3, 9))
        shift, scale, gate = head.poseLN_modulation(cond).chunk(3, -1)
        ln = torch.nn.functional.layer_norm(t, (32,), eps=1e-6)
        x = head.trunk(gate * (ln * (1 + scale) + shift) + t)
        first = activate_pose(head.pose_branch(head.trunk_norm(x)))
    torch.testing.assert_close(a[0], first, rtol=1e-5, atol=1e-6)


def test_pose_encoding_round_trip_through_head_outputs():
    head = _head()
    with torch.no_grad():
        pose = head(torch.randn(2, 4, 6, 32))[-1]
    ext, intr = pose_encoding_to_extri_intri(pose, (70, 98))
    back = extri_intri_to_pose_encoding(ext, intr, (70, 98))
    quat = pose[..., 3:7] / pose[..., 3:7].norm(dim=-1, keepdim=True)
    quat = torch.where(quat[..., 3:4] < 0, -quat, quat)
    torch.testing.assert_close(back[..., :3], pose[..., :3], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back[..., 3:7], quat, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back[..., 7:], pose[..., 7:], rtol=1e-5, atol=1e-5)
    rot = ext[..., :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3).expand_as(rot), rtol=1e-5, atol=1e-5)


def test_later_iterations_see_detached_pose():
    head = _head().train()
    seen = []
    head.embed_pose.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].requires_grad))
    head(torch.randn(1, 2, 3, 32, requires_grad=True))
    assert seen == [True, False, False, False]  # learned empty pose first, then the detached estimate


def test_fov_activation_softplus_option():
    """recon.camera_head.fov_activation: ReLU (VGGT) has no gradient below 0; softplus is positive with a gradient."""
    import torch.nn.functional as F

    from recon.config import CameraHeadConfig
    from recon.heads.camera_head import CameraHead, activate_pose

    pose = torch.tensor([[0.1, 0.2, 0.3, 1.0, 0.0, 0.0, 0.0, -0.5, 0.7]], requires_grad=True)
    relu = activate_pose(pose)
    torch.testing.assert_close(relu[0, 7:], torch.tensor([0.0, 0.7]))
    relu[0, 7].backward()
    assert pose.grad[0, 7] == 0  # a dead FoV stays dead
    pose.grad = None
    soft = activate_pose(pose, "softplus")
    torch.testing.assert_close(soft[0, 7:], F.softplus(torch.tensor([-0.5, 0.7])))
    torch.testing.assert_close(soft[0, :7], pose[0, :7])
    soft[0, 7].backward()
    assert pose.grad[0, 7] > 0
    with pytest.raises(ValueError, match="fov_activation"):
        activate_pose(pose, "exp")
    with pytest.raises(ValueError, match="fov_activation"):
        CameraHeadConfig(fov_activation="exp")
    torch.manual_seed(0)
    head = CameraHead(32, trunk_depth=1, num_heads=4, iterations=2)
    torch.manual_seed(0)
    soft_head = CameraHead(32, trunk_depth=1, num_heads=4, iterations=2, fov_activation="softplus")
    tokens = torch.randn(1, 3, 5, 32)
    a, b = head(tokens)[-1], soft_head(tokens)[-1]
    torch.testing.assert_close(a[..., :7], b[..., :7])  # same weights: only the FoV activation differs
    assert CameraHeadConfig().fov_activation == "relu"  # the VGGT default
