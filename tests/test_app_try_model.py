"""AppTest of "Try the model" (uploads, in-process and against a model server) and of the sample
detail's remote mode (Grad-CAM answered by a running `python -m audit serve`)."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = str(REPO / "pages" / "try_model.py")


def face_jpeg(tiny_demo: Path) -> bytes:
    return sorted((tiny_demo / "images" / "train").rglob("mask1.jpg"))[0].read_bytes()


def image_captions(at) -> list[str]:
    return [i.caption for img in at.get("image") for i in img.proto.imgs]


def first_run(at, monkeypatch, workspace: Path, *, model_url: str | None = None):
    """`at` run once with the workspace at `workspace` and `model_url` as the model server (None:
    none, the model in this process); it must not raise."""
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(workspace))
    if model_url is None:
        monkeypatch.delenv("MASK_AUDIT_MODEL_URL", raising=False)
    else:
        monkeypatch.setenv("MASK_AUDIT_MODEL_URL", model_url)
    at.run()
    assert not at.exception, at.exception
    return at


def test_try_model_in_process_good_photo_and_a_non_image(tiny_demo, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from audit.serving import ImagePredictor

    at = first_run(AppTest.from_file(PAGE, default_timeout=120), monkeypatch, tmp_path / "ws")
    assert any("Upload one or more photos" in i.value for i in at.info)

    good = face_jpeg(tiny_demo)
    at.file_uploader(key="try_uploads").set_value([("face.jpg", good, "image/jpeg"),
                                                   ("notes.jpg", b"meeting notes, not a photo", "image/jpeg")])
    at.run()
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # shown as escaped plain text
    assert len(errors) == 1 and "notes" in errors[0] and "not an image" in errors[0], errors
    shown = " ".join(m.value for m in at.markdown)
    predictor = ImagePredictor(REPO / "weights" / "demo", device="cpu")
    expected = predictor.predict([predictor.prepare(good)])[0]
    from audit import labels
    assert f"predicted: **{labels.class_name(expected['class_id'])}**" in shown
    captions = image_captions(at)
    assert any(c.startswith("Grad-CAM: ") for c in captions) and any(c.startswith("EigenCAM: ") for c in captions)
    # the upload lives in the workspace, named by its content; the data folder is untouched
    stored = list((tmp_path / "ws" / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == good
    assert not any(p.name.startswith(stored[0].stem) for p in tiny_demo.rglob("*"))

    at.radio(key="try_gradcam_head").set_value("age").run()
    assert not at.exception, at.exception
    assert any(c.startswith("Grad-CAM: ") and "(p=" in c for c in image_captions(at))


def test_try_model_refuses_a_truncated_and_a_tiny_photo(tiny_demo, tmp_path, monkeypatch):
    from PIL import Image
    from streamlit.testing.v1 import AppTest

    good = face_jpeg(tiny_demo)
    tiny = io.BytesIO()
    Image.new("RGB", (5, 5)).save(tiny, format="PNG")
    at = first_run(AppTest.from_file(PAGE, default_timeout=120), monkeypatch, tmp_path / "ws")
    at.file_uploader(key="try_uploads").set_value([("cut.jpg", good[: len(good) // 2], "image/jpeg"),
                                                   ("dot.png", tiny.getvalue(), "image/png")])
    at.run()
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # shown as escaped plain text
    assert any("cut.jpg" in e and "cannot be decoded" in e for e in errors), errors
    assert any("dot.png" in e and "too small" in e for e in errors), errors
    assert not (tmp_path / "ws" / "uploads").exists() or not any((tmp_path / "ws" / "uploads").iterdir())


def test_try_model_says_when_the_server_is_unreachable(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from test_serving import free_port

    at = first_run(AppTest.from_file(PAGE, default_timeout=60), monkeypatch, tmp_path / "ws",
                   model_url=f"http://127.0.0.1:{free_port()}")
    assert any("cannot be reached" in e.value.replace("\\", "") and "\n" not in e.value for e in at.error), \
        [e.value for e in at.error]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_serving import ServerProcess

    proc = ServerProcess(log_path=tmp_path_factory.mktemp("serve_app") / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.mark.slow
def test_try_model_against_a_model_server(server, tiny_demo, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from audit import labels
    from audit.model_client import ModelClient

    at = first_run(AppTest.from_file(PAGE, default_timeout=120), monkeypatch, tmp_path / "ws", model_url=server.url)
    assert any(server.url in c.value.replace("\\", "") for c in at.caption)
    good = face_jpeg(tiny_demo)
    at.file_uploader(key="try_uploads").set_value([("face.jpg", good, "image/jpeg")])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    expected = ModelClient(server.url).predict([good])[0]
    assert f"predicted: **{labels.class_name(expected['class_id'])}**" in " ".join(m.value for m in at.markdown)
    captions = image_captions(at)
    assert any(c.startswith("Grad-CAM: ") for c in captions) and any(c.startswith("EigenCAM: ") for c in captions)


@pytest.mark.slow
def test_sample_detail_gradcam_comes_from_the_model_server(server, tiny_demo, tiny_run, tmp_path, monkeypatch):
    """A run whose checkpoint is not on this machine: in-process the detail cannot explain it; with
    a model server configured, the server draws the four overlays."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    run = tmp_path / "run_elsewhere"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "meta.json").read_text())
    meta["checkpoint"] = "/nowhere/gpu-box/weights/model.pt"
    (run / "meta.json").write_text(json.dumps(meta))

    def open_detail(url: str):
        at = AppTest.from_file(str(REPO / "pages" / "samples.py"), default_timeout=120)
        at.session_state["data_dir"] = str(tiny_demo)
        at.session_state["run_dir"] = str(run)
        at.session_state["model_url"] = url
        at.run()
        assert not at.exception, at.exception
        at.button(key="samples_open_0").click().run()
        assert not at.exception, at.exception
        return at

    at = open_detail("")
    assert any("not on this machine" in c.value for c in at.caption)

    at = open_detail(server.url)
    at.button(key="detail_gradcam_button").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = " ".join(image_captions(at))
    for method in ("Grad-CAM · given", "Grad-CAM · predicted", "EigenCAM · given", "EigenCAM · predicted"):
        assert method in text, text[:500]
    # the demo model on the server sees the central 70%: the detail says what is dimmed
    assert any("Dimmed" in c.value and "70%" in c.value for c in at.caption)
    assert np.isfinite(meta.get("timings", {}).get("predict_s", 0.0))


SIDEBAR_BOX = """
import streamlit as st
from ui import app_cache, sidebar
sidebar._model_server_box(app_cache.AppContext())
"""


def test_sidebar_model_box_in_process_and_unreachable(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from test_serving import free_port

    at = first_run(AppTest.from_string(SIDEBAR_BOX, default_timeout=60), monkeypatch, tmp_path / "ws")
    assert any("loaded in this process" in c.value for c in at.caption)
    at.text_input(key="sidebar_model_url").set_value(f"127.0.0.1:{free_port()}").run()
    assert not at.exception, at.exception
    assert at.session_state["model_url"].startswith("127.0.0.1:")
    assert any("cannot be reached" in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]


@pytest.mark.slow
def test_sidebar_model_box_names_the_server_and_its_model(server, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from audit.model import checkpoint_sha256

    at = first_run(AppTest.from_string(SIDEBAR_BOX, default_timeout=60), monkeypatch, tmp_path / "ws",
                   model_url=server.url)
    text = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "Answering: test_resnet (demo" in text and server.url in text and "on cpu" in text
    assert checkpoint_sha256(REPO / "weights" / "demo")[:12] in text
