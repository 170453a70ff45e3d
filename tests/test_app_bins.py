"""The app follows a run's age bins (issue #12: it always indexed with the default <25/25-39/>=40,
so a run made with the competition's <30/30-59/>=60 showed wrong age names, classes and export ages)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from test_app_support import AppData, page_test, write_seed_dataset, write_synthetic_run

COMPETITION_NAMES = ("<30", "30–59", "≥60")


@pytest.fixture(scope="module")
def competition_data(tmp_path_factory) -> AppData:
    from audit.dataset_index import index_dataset
    from audit.labels import COMPETITION_BINS

    base = tmp_path_factory.mktemp("bins")
    root = base / "data"
    write_seed_dataset(root, seed=4)
    index = index_dataset(root, bins=COMPETITION_BINS)
    run = write_synthetic_run(index, base / "workspace" / "runs" / "competition")
    return AppData(root=root, run=run, workspace=base / "workspace", index=index)


@pytest.fixture
def data(competition_data, monkeypatch) -> AppData:
    monkeypatch.setenv("MASK_AUDIT_DATA", str(competition_data.root))
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(competition_data.workspace))
    return competition_data


def _plotly_text(at) -> str:
    """Every chart's figure as text, unescaped (plotly's JSON writes "<" and "–" as \\u escapes)."""
    return " ".join(json.dumps(json.loads(el.proto.spec), ensure_ascii=False) for el in at.get("plotly_chart"))


def test_overview_and_confusion_name_the_runs_bins(data):
    at = page_test("overview", data).run()
    assert not at.exception, at.exception
    charts = _plotly_text(at)
    assert all(name in charts for name in COMPETITION_NAMES)
    assert "25–39" not in charts

    at = page_test("confusion", data).run()
    assert not at.exception, at.exception
    at.radio(key="confusion_head").set_value("Age").run()
    text = _plotly_text(at)
    assert all(name in text for name in COMPETITION_NAMES) and "25–39" not in text
    at.selectbox(key="confusion_group_by").set_value("age_bin").run()
    groups = [set(map(str, d.value.index)) for d in at.dataframe]
    assert any(g and g <= set(COMPETITION_NAMES) for g in groups), groups


def test_label_noise_and_export_use_the_runs_bins(data, tmp_path, monkeypatch):
    from audit.export import read_export_csv
    from audit.reviews import ReviewStore

    queue = pd.read_parquet(data.run / "suspects.parquet")
    age = queue[(queue["field"] == "age") & (queue["item_kind"] == "person")].iloc[0]
    at = page_test("label_noise", data).run()
    at.toggle(key="label_noise_flagged").set_value(False)
    at.multiselect(key="label_noise_field").set_value(["age"]).run()
    assert not at.exception, at.exception
    page_text = " ".join(m.value for m in at.markdown) + " ".join(str(d.value) for d in at.dataframe)
    assert any(name in page_text for name in COMPETITION_NAMES) and "25–39" not in page_text

    # A decision on a person's age bin, exported: the corrected age lies inside the competition bin.
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(tmp_path / "ws"))
    store = ReviewStore(tmp_path / "ws" / "reviews.sqlite")
    target = 2 if int(age["given"]) != 2 else 0
    store.record(data.index.fingerprint, age["item"], "age", "set", given=int(age["given"]), new_value=target,
                 suggested=int(age["suggested"]), bins=data.index.bins)
    at = page_test("export", data).run()
    assert not at.exception, at.exception
    written = sorted((tmp_path / "ws" / "exports").glob("*/train.csv"))
    assert written, "no corrected train.csv was written"
    train = read_export_csv(written[-1])
    person = data.index.images.loc[data.index.images["person"] == age["item"], "person_id"].iloc[0]
    row = train[train["id"].astype(str) == str(person)].iloc[0]
    lo, hi = data.index.bins.edges
    new_age = int(row["age"])
    assert (new_age >= hi) if target == 2 else (new_age < lo), (new_age, target)


def test_without_a_run_the_sidebar_choice_sets_the_bins(data):
    at = page_test("overview", data, run=False)
    at.session_state["age_bins"] = "competition"
    at.session_state["run_dir"] = ""
    at.run()
    assert not at.exception, at.exception
    text = _plotly_text(at)
    assert all(name in text for name in COMPETITION_NAMES)


@pytest.mark.slow
def test_gradcam_captions_name_the_runs_age_bins(tiny_demo, tiny_run, tiny_checkpoint):
    """The Grad-CAM overlays of the age head named their classes with the default bins whatever
    the run's (issue #12's one vocabulary: the captions now take the context's bins)."""
    from audit.labels import COMPETITION_BINS
    from audit.model import checkpoint_sha256
    from audit.runs import Run
    from ui import app_cache

    path = str(tiny_demo / Run.open(tiny_run).predictions["path"].iloc[0])
    overlays = app_cache.gradcam_overlays(str(tiny_checkpoint), checkpoint_sha256(tiny_checkpoint), path,
                                          app_cache._stat_stamp([path]), "age", 0, 2, COMPETITION_BINS)
    captions = [caption for caption, _image in overlays]
    assert len(captions) == 4 and all(("<30" in c) != ("≥60" in c) for c in captions), captions
    assert not any("25" in c for c in captions), captions
