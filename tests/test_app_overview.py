"""AppTest of the Overview page and of app.py (the router and its sidebar)."""
from __future__ import annotations

from pathlib import Path

from test_app_support import app_data, app_data_session, page_test  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent


def test_overview_shows_counts_findings_and_metrics(app_data):
    at = page_test("overview", app_data).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    shown = {m.label: m.value for m in at.metric}
    assert shown["Images"] == f"{len(app_data.index.images):,}"
    assert shown["People (train)"] == "12"
    # headline metrics of the run: one macro F1 per split
    assert "Macro F1 · train (out-of-fold)" in shown and "Macro F1 · eval" in shown
    assert not at.error


def test_overview_filters_findings(app_data, tmp_path):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(app_data.root, root)
    (root / "images" / "train" / "not_a_person").mkdir()
    (root / "images" / "eval" / "._hidden.png").write_bytes(b"x")
    at = page_test("overview", app_data, run=False)
    at.session_state["data_dir"] = str(root)
    at.run()
    assert not at.exception, at.exception
    kinds = at.multiselect(key="overview_finding_kinds")
    assert len(kinds.options) >= 2
    at.text_input(key="overview_finding_text").input("._hidden").run()
    assert "1 of" in " ".join(c.value for c in at.caption)


def test_overview_missing_folder_is_a_clear_message(app_data, tmp_path):
    at = page_test("overview", app_data, run=False)
    at.session_state["data_dir"] = str(tmp_path / "nope")
    at.run()
    assert not at.exception
    assert "does not exist" in at.error[0].value


def test_app_router_opens_on_overview_with_sidebar(app_data):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    # --data / env var set the data folder; the newest run of this dataset is chosen
    assert at.session_state["data_dir"] == str(app_data.root)
    assert at.session_state["run_dir"] == str(app_data.run)
    assert at.text_input(key="sidebar_data_dir").value == str(app_data.root)
    # the run's model card (the committed demo model): its eval metrics say how they were measured
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "eval (out-of-fold): macro F1" in captions and "oof: macro F1" in captions


def test_first_start_builds_the_demo_with_progress(tmp_path, monkeypatch):
    """No dataset configured: app.py draws the demo into the workspace, then shows its overview."""
    import audit.demo_data as demo_data
    from streamlit.testing.v1 import AppTest

    from audit import workspace

    real_make_demo = demo_data.make_demo
    calls = []

    def small_demo(out, **kw):  # the real generator, at a test's size
        calls.append(kw)
        return real_make_demo(out, people=4, eval_images=8, seed=kw.get("seed", 0), workers=1,
                              progress=kw.get("progress"))

    monkeypatch.setattr(demo_data, "make_demo", small_demo)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert len(calls) == 1 and calls[0].get("progress") is not None
    assert (workspace.demo_data_dir() / "demo.json").is_file()
    assert at.title[0].value == "Overview"
    assert {m.label: m.value for m in at.metric}["Images"] == f"{4 * 7 + 8:,}"
    # a second run finds the demo built and does not draw it again
    at.run()
    assert len(calls) == 1


def test_run_of_another_dataset_and_missing_run_are_clear_messages(app_data, tmp_path):
    import shutil

    from audit.dataset_index import index_dataset
    from test_app_support import write_seed_dataset

    other = tmp_path / "other"
    write_seed_dataset(other, people=5, eval_images=4, seed=1)
    assert index_dataset(other).fingerprint != app_data.index.fingerprint
    at = page_test("overview", app_data)
    at.session_state["data_dir"] = str(other)
    at.run()
    assert not at.exception, at.exception
    assert any("made on another dataset" in w.value for w in at.warning), [w.value for w in at.warning]
    # pages that need the run stop with the message instead of showing the wrong labels
    conf = page_test("confusion", app_data)
    conf.session_state["data_dir"] = str(other)
    conf.run()
    assert not conf.exception and "made on another dataset" in conf.error[0].value

    gone = tmp_path / "gone_run"
    shutil.copytree(app_data.run, gone)
    shutil.rmtree(gone)
    at = page_test("samples", app_data)
    at.session_state["run_dir"] = str(gone)
    at.run()
    assert not at.exception
    assert "has no predictions.parquet" in at.error[0].value
