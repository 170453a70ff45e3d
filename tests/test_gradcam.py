import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from audit.gradcam import GradCamExplainer, HeadLogits, choose_cam_layer
from audit.model import create_model, crop_box


def _face(size=(96, 128)) -> Image.Image:
    """A small portrait with structure (face, eyes, a mask band) so activations vary in space."""
    w, h = size
    img = Image.new("RGB", size, (90, 140, 200))
    d = ImageDraw.Draw(img)
    d.ellipse([w * 0.2, h * 0.15, w * 0.8, h * 0.85], fill=(225, 180, 150))
    d.ellipse([w * 0.33, h * 0.38, w * 0.43, h * 0.45], fill=(20, 20, 20))
    d.ellipse([w * 0.57, h * 0.38, w * 0.67, h * 0.45], fill=(20, 20, 20))
    d.rectangle([w * 0.25, h * 0.55, w * 0.75, h * 0.75], fill=(250, 250, 250))
    return img


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core box OpenMP's
    spinning threads make them 10-20x slower; restore the setting for other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = create_model("test_resnet", pretrained=False)
    return GradCamExplainer(model, model.card, device="cpu")


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = create_model("test_vit", pretrained=False)
    return GradCamExplainer(model, model.card, device="cpu")


def test_layer_choice_cnn_and_vit(cnn, vit):
    assert cnn.layer.name == "backbone.layer4"
    assert cnn.layer.reshape_transform is None
    assert cnn.layer.module is cnn.model.backbone.layer4
    assert vit.layer.module is vit.model.backbone.blocks[-1].norm1
    h, w = vit.layer.grid
    assert h * w + vit.model.backbone.num_prefix_tokens == vit.model.backbone.patch_embed.num_patches + \
        vit.model.backbone.num_prefix_tokens
    tokens = torch.randn(2, vit.model.backbone.num_prefix_tokens + h * w, 7)
    assert vit.layer.reshape_transform(tokens).shape == (2, 7, h, w)


def test_layer_choice_nhwc_and_no_spatial_layer():
    class NHWCNet(nn.Module):
        output_fmt = "NHWC"

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.norm = nn.LayerNorm(4)

        def forward(self, x):
            return self.norm(self.conv(x).permute(0, 2, 3, 1)).mean(dim=(1, 2))

    layer = choose_cam_layer(NHWCNet(), (3, 32, 48))
    assert layer.name == "norm" and layer.grid == (16, 24)
    assert layer.reshape_transform(torch.zeros(1, 16, 24, 4)).shape == (1, 4, 16, 24)

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ValueError):
        choose_cam_layer(mlp, (3, 8, 8))


@pytest.mark.parametrize("which", ["cnn", "vit"])
@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
def test_heatmap_has_the_image_size_and_varies(which, method, request):
    explainer = request.getfixturevalue(which)
    image = _face((90, 120))  # neither square nor the model's input size
    result = explainer.explain(image, "mask", 1, method=method)
    assert result.heatmap.shape == (120, 90) and result.heatmap.dtype == np.float32
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
    assert result.heatmap.std() > 0.01, "constant heatmap"
    assert result.overlay.size == image.size and result.overlay.mode == "RGB"
    assert result.method == method and result.head == "mask" and result.class_index == 1
    assert 0.0 < result.probability < 1.0
    # Hooks are released after each call (the CAM object is used as a context manager).
    assert not explainer.layer.module._forward_hooks


def test_heatmap_of_a_cropping_model_covers_its_crop_only():
    torch.manual_seed(0)
    model = create_model("test_resnet", pretrained=False, crop=0.6)
    explainer = GradCamExplainer(model, model.card, device="cpu")
    image = _face((90, 120))
    left, top, right, bottom = crop_box(image.size, 0.6)
    for method in ("gradcam", "eigencam"):
        heatmap = explainer.explain(image, "gender", 1, method=method).heatmap
        assert heatmap.shape == (120, 90)
        inside = heatmap[top:bottom, left:right]
        assert inside.std() > 0.01, "constant heatmap inside the crop"
        outside = heatmap.copy()
        outside[top:bottom, left:right] = 0
        assert not outside.any(), "heat outside what the model saw"
    # the overlay dims what the model did not see instead of colouring it
    overlay = np.asarray(explainer.explain(image, "gender", 1).overlay)
    original = np.asarray(image)
    assert (overlay[0, 0] == original[0, 0] // 2).all()
    assert not (overlay[top:bottom, left:right] == original[top:bottom, left:right] // 2).all()


def test_other_gradient_methods_run(cnn):
    for method in ("gradcam++", "layercam"):
        result = cnn.explain(_face(), "age", 2, method=method)
        assert result.heatmap.shape == (128, 96) and result.heatmap.std() > 0.01


def test_pair_given_and_predicted(cnn):
    image = _face()
    with torch.no_grad():
        logits = HeadLogits(cnn.model, "gender")(cnn.transform(image).unsqueeze(0))
    predicted = int(logits.argmax())
    given = 1 - predicted
    pair = cnn.explain_pair(image, "gender", given)
    assert pair.predicted == predicted and pair.given == given
    assert pair.probabilities.shape == (2,) and abs(pair.probabilities.sum() - 1) < 1e-5
    assert set(pair.for_given) == set(pair.for_predicted) == {"gradcam", "eigencam"}
    g, p = pair.for_given["gradcam"], pair.for_predicted["gradcam"]
    assert g.class_index == given and p.class_index == predicted
    assert g.heatmap.shape == p.heatmap.shape == (128, 96)
    # The batched pass gives the same map as a single explain() for each class.
    np.testing.assert_allclose(p.heatmap, cnn.explain(image, "gender", predicted).heatmap, atol=1e-4)
    np.testing.assert_allclose(g.heatmap, cnn.explain(image, "gender", given).heatmap, atol=1e-4)
    # EigenCAM does not depend on the class: one map, shown for both.
    np.testing.assert_array_equal(pair.for_given["eigencam"].heatmap, pair.for_predicted["eigencam"].heatmap)
    assert pair.for_predicted["eigencam"].class_index == predicted

    same = cnn.explain_pair(image, "gender", predicted, predicted, methods=("gradcam",))
    assert same.for_given["gradcam"] is same.for_predicted["gradcam"]


def test_bad_requests_are_refused(cnn):
    image = _face()
    with pytest.raises(ValueError):
        cnn.explain(image, "race", 0)
    with pytest.raises(ValueError):
        cnn.explain(image, "gender", 2)  # gender has 2 classes
    with pytest.raises(ValueError):
        cnn.explain(image, "mask", -1)
    with pytest.raises(ValueError):
        cnn.explain(image, "mask", 0, method="scorecam-typo")
    with pytest.raises(ValueError):
        cnn.explain_pair(image, "age", 0, 1, methods=("gradcam", "nope"))


def test_callers_jpeg_is_not_shrunk(cnn, tmp_path):
    path = tmp_path / "face.jpg"
    _face((384, 512)).save(path, quality=90)
    with Image.open(path) as image:
        result = cnn.explain(image, "mask", 0, method="eigencam")
        assert image.size == (384, 512)
    assert result.heatmap.shape == (512, 384) and result.overlay.size == (384, 512)


def test_explainer_from_checkpoint(tmp_path):
    from audit.model import save_checkpoint

    torch.manual_seed(1)
    model = create_model("test_resnet", pretrained=False)
    path = save_checkpoint(model, model.card, tmp_path / "ckpt")
    explainer = GradCamExplainer.from_checkpoint(path, device="cpu")
    assert explainer.layer.name == "backbone.layer4"
    assert explainer.explain(_face(), "age", 0).heatmap.shape == (128, 96)


def test_cpu_threads_apply_during_the_call_only(cnn, monkeypatch):
    assert cnn.cpu_threads == 1  # the default on CPU
    assert GradCamExplainer(cnn.model, cnn.card, device="cpu", cpu_threads=None).cpu_threads is None
    explainer = GradCamExplainer(cnn.model, cnn.card, device="cpu", cpu_threads=1)
    seen = []
    original = explainer._run

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(explainer, "_run", spy)
    torch.set_num_threads(2)
    try:
        explainer.explain(_face(), "mask", 0, method="eigencam")
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_overlay_blends_the_heatmap_onto_the_image():
    from audit.gradcam import overlay_heatmap

    image = _face((40, 30))
    heat = np.zeros((30, 40), np.float32)
    heat[:, 20:] = 1.0
    out = np.asarray(overlay_heatmap(image, heat)).astype(int)
    src = np.asarray(image).astype(int)
    assert out.shape == src.shape
    # Hot half is pulled towards JET red, cold half towards JET blue.
    assert (out[:, 30, 0] - src[:, 30, 0]).mean() > (out[:, 5, 0] - src[:, 5, 0]).mean()
    with pytest.raises(ValueError):
        overlay_heatmap(image, np.zeros((40, 30), np.float32))
