"""ROI boxes, crops and pasting back agree with each other and with hand-checked values."""

import torch

from amodal3d.roi import crop, inside_image, paste, roi_inputs, square_rois


def test_square_rois_are_centred_squares():
    rois = square_rois(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), enlarge=2.0)
    assert torch.allclose(rois, torch.tensor([[-20.0, 0.0, 60.0, 80.0]]))


def test_crop_then_paste_recovers_a_mask():
    mask = torch.zeros(1, 1, 64, 64)
    mask[0, 0, 20:40, 10:30] = 1.0
    rois = torch.tensor([[4.0, 14.0, 36.0, 46.0]])  # 32 px square around the mask
    roi = crop(mask, rois, torch.tensor([0]), 32)
    assert roi.shape == (1, 1, 32, 32) and torch.allclose(roi.sum(), torch.tensor(400.0), atol=1.0)
    back = paste(roi[:, 0], rois, 64, 64)
    assert ((back > 0.5) == (mask[0] > 0.5)).all()


def test_crop_outside_the_image_is_zero_and_flagged():
    image = torch.ones(1, 3, 16, 16)
    rois = torch.tensor([[-16.0, 0.0, 16.0, 32.0]])
    roi = crop(image, rois, torch.tensor([0]), 8)
    valid = inside_image(rois, 16, 16, 8)
    assert torch.allclose(roi[0, 0] > 0.5, valid[0, 0] > 0.5)
    assert valid[0, 0, :4, 4:].all() and not valid[0, 0, :, :4].any() and not valid[0, 0, 4:].any()



def test_occluder_channel_leaves_out_what_the_instance_sees_itself():
    # two detected visible masks that overlap (step 1's can; true ones never do) and a third apart
    visible = torch.zeros(3, 32, 32, dtype=torch.bool)
    visible[0, 8:20, 8:20] = True
    visible[1, 14:26, 14:26] = True
    visible[2, 0:4, 26:32] = True
    roi, rois = roi_inputs(torch.rand(3, 32, 32), visible, size=32)
    own, occluder = roi[:, 3] > 0.5, roi[:, 4] > 0.5
    assert not (own & occluder).any()
    others = torch.stack([(visible.sum(0) - visible[i].int() > 0) & ~visible[i] for i in range(3)])
    expected = crop(others.float()[:, None], rois, torch.arange(3), 32)[:, 0] > 0.5
    assert torch.equal(occluder, expected) and occluder[0].any() and occluder[1].any()
