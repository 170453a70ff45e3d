"""The model server (audit/serving.py) and its client (audit/model_client.py).

The server tests start `python -m audit serve` with the committed demo model as a subprocess on a
free local port (LitServe spawns its worker; nothing forks), and always stop it.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from audit.model_client import ModelClient, ModelServerError, normalise_url
from audit.serving import RequestError, ServeConfig, open_upload, parse_options

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / "weights" / "demo"
SERVER_START_S = 180  # a spawned worker imports torch and timm; slow on a loaded 2-core box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m audit serve` in its own session, so stopping it reaches every process it started."""

    def __init__(self, *args: str, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        cmd = [sys.executable, "-m", "audit", "serve", "--weights", str(DEMO_WEIGHTS), "--port", str(self.port),
               "--device", "cpu", *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.log_path = log_path

    def wait_ready(self, timeout: float = SERVER_START_S) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready after {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:  # the session this test started: workers LitServe left behind, if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running server of the demo model (small limits, to test 413 cheaply); stopped afterwards."""
    proc = ServerProcess("--max-batch-size", "4", "--batch-timeout", "0.05", "--max-request-mb", "1",
                         "--max-image-mb", "0.5", log_path=tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def in_process():
    """The demo model loaded here, as the app loads it."""
    from audit.model import load_checkpoint

    return load_checkpoint(DEMO_WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def sample_files(tiny_demo) -> list[Path]:
    """Two JPEGs and a PNG of the tiny demo."""
    files = sorted((tiny_demo / "images").rglob("*"))
    jpgs = [f for f in files if f.suffix == ".jpg"][:2]
    pngs = [f for f in files if f.suffix == ".png"][:1]
    assert len(jpgs) == 2 and len(pngs) == 1
    return jpgs + pngs


def in_process_predictions(in_process, paths) -> dict:
    from PIL import Image

    from audit.prediction import predict_images

    model, card = in_process
    images = [Image.open(p) for p in paths]
    try:
        return predict_images(model, card, images)
    finally:
        for im in images:
            im.close()


def assert_matches(pred: dict, ref: dict, i: int) -> None:
    for head in ("mask", "gender", "age"):
        np.testing.assert_allclose(pred[head], ref[head][i], atol=1e-5, err_msg=head)
    assert pred["class_id"] == int(np.argmax(ref["class"][i]))
    assert pred["confidence"] == pytest.approx(float(np.max(ref["class"][i])), abs=1e-5)
    assert pred["age_years"] == pytest.approx(float(ref["age_reg"][i]), abs=1e-3)


# ----------------------------------------------------------------------------- without a server


def _upload_refusal(data: bytes, **limits) -> RequestError:
    """The RequestError that open_upload must raise for `data`."""
    with pytest.raises(RequestError) as err:
        open_upload(data, **limits)
    return err.value


def _image_bytes(size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format=fmt)
    return buf.getvalue()


def test_open_upload_refuses_what_is_not_a_usable_image(tmp_path):
    assert _upload_refusal(b"just some text, not a picture").status == 415
    assert _upload_refusal(b"").status == 422
    err = _upload_refusal(_image_bytes((8, 8), "PNG"))
    assert err.status == 422 and "too small" in err.reason
    assert _upload_refusal(b"x" * 2000, max_bytes=1000).status == 413
    err = _upload_refusal(_image_bytes((64, 64), "GIF"))
    assert err.status == 415 and "GIF" in err.reason
    assert _upload_refusal(_image_bytes((300, 300), "PNG"), max_pixels=50_000).status == 413


def test_parse_options():
    assert parse_options({}) == (False, None)
    embedding, cam = parse_options({"embedding": "1", "gradcam": "age", "gradcam_classes": "0,2",
                                    "gradcam_methods": "gradcam,eigencam"})
    assert embedding and cam.head == "age" and cam.classes == (0, 2) and cam.methods == ("gradcam", "eigencam")
    for bad in ({"gradcam": "nose"}, {"gradcam": "gender", "gradcam_classes": "2"},
                {"gradcam": "mask", "gradcam_classes": "a"}, {"gradcam": "mask", "gradcam_methods": "magic"}):
        with pytest.raises(RequestError) as err:
            parse_options(bad)
        assert err.value.status == 400


def test_serve_config_and_url_checks():
    with pytest.raises(ValueError, match="host"):
        ServeConfig(weights="w", host="example.com").validate()
    with pytest.raises(ValueError, match="port"):
        ServeConfig(weights="w", port=80).validate()
    with pytest.raises(ValueError, match="max-batch-size"):
        ServeConfig(weights="w", max_batch_size=0).validate()
    assert normalise_url("127.0.0.1:8700/") == "http://127.0.0.1:8700"
    with pytest.raises(ValueError):
        normalise_url("ftp://x")


def test_serve_command_refuses_a_missing_checkpoint(tmp_path, capsys):
    from audit.cli import main

    assert main(["serve", "--weights", str(tmp_path / "nothing")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_serve_command_refuses_a_port_in_use(capsys):
    from audit.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--weights", str(DEMO_WEIGHTS), "--port", str(port)]) == 2
    assert "in use" in capsys.readouterr().err


def test_client_says_when_no_server_answers():
    client = ModelClient(f"http://127.0.0.1:{free_port()}", timeout=3)
    assert not client.health()
    with pytest.raises(ModelServerError, match="cannot be reached"):
        client.card()


def test_in_process_predictor_equals_predict_images(in_process, sample_files):
    """The app's in-process path for uploads (ImagePredictor) is the run's preprocessing and forward."""
    from audit.serving import ImagePredictor

    predictor = ImagePredictor(DEMO_WEIGHTS, device="cpu")
    got = predictor.predict([predictor.prepare(p.read_bytes()) for p in sample_files], embedding=True)
    ref = in_process_predictions(in_process, sample_files)
    for i, pred in enumerate(got):
        assert_matches(pred, ref, i)
        np.testing.assert_allclose(pred["embedding"], ref["embedding"][i], atol=1e-4)


# ----------------------------------------------------------------------------- against a server


@pytest.mark.slow
def test_served_prediction_equals_in_process(server, in_process, sample_files):
    client = ModelClient(server.url)
    ref = in_process_predictions(in_process, sample_files)
    for i, path in enumerate(sample_files):
        (pred,) = client.predict([path])
        assert set(pred) == {"mask", "gender", "age", "class_id", "confidence", "age_years"}
        assert_matches(pred, ref, i)


@pytest.mark.slow
def test_batch_request_keeps_order_and_embeddings(server, in_process, sample_files):
    client = ModelClient(server.url)
    files = [sample_files[2], sample_files[0], sample_files[1], sample_files[0]]
    preds = client.predict(files, embedding=True)
    ref = in_process_predictions(in_process, files)
    assert len(preds) == 4
    for i, pred in enumerate(preds):
        assert_matches(pred, ref, i)
        assert len(pred["embedding"]) == in_process[1].embedding_dim
        np.testing.assert_allclose(pred["embedding"], ref["embedding"][i], atol=1e-4)


@pytest.mark.slow
def test_concurrent_requests_are_batched_without_mixing_answers(server, in_process, sample_files):
    """Eight clients at once (LitServe groups up to 4 requests): each gets its own images' answer,
    and a bad request among them fails alone."""
    client = ModelClient(server.url)
    jobs = [[sample_files[i % 3]] * (1 + i % 2) for i in range(8)]
    ref = in_process_predictions(in_process, sample_files)

    def send(files):
        return client.predict(files)

    def send_bad():
        return requests.post(server.url + "/predict", files=[("image", ("x.jpg", b"not an image"))], timeout=60)

    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(send, files) for files in jobs]
        bad = pool.submit(send_bad)
        results = [f.result() for f in futures]
    assert bad.result().status_code == 415
    for i, (files, preds) in enumerate(zip(jobs, results)):
        assert len(preds) == len(files)
        for pred in preds:
            assert_matches(pred, ref, i % 3)


@pytest.mark.slow
def test_card_route(server):
    from audit.model import checkpoint_sha256, read_card

    from audit.model import ModelCard

    card = ModelClient(server.url).card()
    assert ModelCard.from_dict(card["card"]) == read_card(DEMO_WEIGHTS)
    assert card["checkpoint_sha256"] == checkpoint_sha256(DEMO_WEIGHTS)
    assert card["device"] == "cpu"


@pytest.mark.slow
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, sample_files):
    from PIL import Image

    url = server.url + "/predict"
    data = sample_files[0].read_bytes()
    truncated = data[: len(data) // 2]
    small = io.BytesIO()
    Image.new("RGB", (4, 4)).save(small, format="PNG")
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (450, 450, 3), dtype=np.uint8)).save(big, format="PNG")
    cases = [
        (dict(files=[("image", ("a.txt", b"hello"))]), 415, "not an image"),
        (dict(files=[("image", ("t.jpg", truncated))]), 422, "cannot be decoded"),
        (dict(files=[("image", ("s.png", small.getvalue()))]), 422, "too small"),
        (dict(files=[("image", ("b.png", big.getvalue()))]), 413, "over"),
        (dict(files=[("image", ("b.png", big.getvalue())), ("image", ("c.png", big.getvalue()))]), 413, "over"),
        (dict(json={"image": "x"}), 415, "multipart"),
        (dict(files=[("other", ("a.jpg", sample_files[0].read_bytes()))]), 400, "no 'image'"),
        (dict(files=[("image", ("a.jpg", sample_files[0].read_bytes()))], data={"gradcam": "nose"}), 400, "gradcam"),
        (dict(files=[("image", ("a.jpg", sample_files[0].read_bytes())), ("image", ("t.jpg", truncated))]), 422,
         "image 2"),
    ]
    for kwargs, status, words in cases:
        r = requests.post(url, timeout=60, **kwargs)
        assert r.status_code == status, (kwargs.get("data"), r.status_code, r.text)
        detail = r.json()["detail"]
        assert words in detail and "\n" not in detail
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
    assert len(ModelClient(server.url).predict([sample_files[0]])) == 1
    with pytest.raises(ModelServerError, match="415"):
        ModelClient(server.url).predict([b"still not an image"])


@pytest.mark.slow
def test_remote_gradcam_matches_in_process(server, in_process, sample_files):
    from PIL import Image

    from audit.gradcam import GradCamExplainer

    model, card = in_process
    explainer = GradCamExplainer(model, card, device="cpu")
    with Image.open(sample_files[0]) as img:
        local = explainer.explain_pair(img, "mask", 1, 0, methods=("gradcam", "eigencam"))
    remote = ModelClient(server.url).explain_pair(sample_files[0], "mask", 1, 0, methods=("gradcam", "eigencam"))
    assert (remote.given, remote.predicted) == (1, 0)
    np.testing.assert_allclose(remote.probabilities, local.probabilities, atol=1e-5)
    for method in ("gradcam", "eigencam"):
        for which in ("for_given", "for_predicted"):
            a, b = getattr(remote, which)[method], getattr(local, which)[method]
            assert a.class_index == b.class_index and a.overlay.size == b.overlay.size
            # 8-bit PNG transport: within one grey level
            np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1 / 255 + 1e-6)
