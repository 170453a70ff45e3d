"""AppTest of the Overview page and of app.py (the router and its sidebar)."""
from __future__ import annotations

from pathlib import Path

from test_app_support import page_test

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
    assert any(c.value.startswith("Train rows are scored on out-of-fold") for c in at.caption)
    assert not at.error


def test_a_run_without_folds_is_not_called_out_of_fold(app_data, tmp_path):
    """An imported run (or one from a model trained without folds) has fold -1 everywhere: the
    Overview used to say "Train rows are scored on out-of-fold predictions" all the same."""
    import pandas as pd

    from audit.runs import PREDICTIONS_NAME
    from test_app_support import run_copy

    run = run_copy(app_data, tmp_path / "imported")
    preds = pd.read_parquet(run / PREDICTIONS_NAME)
    preds["fold"] = -1
    preds.to_parquet(run / PREDICTIONS_NAME, index=False)
    at = page_test("overview", app_data)
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception, at.exception
    shown = {m.label for m in at.metric}
    assert "Macro F1 · train" in shown and not any("out-of-fold" in label for label in shown), shown
    assert not any("out-of-fold" in c.value for c in at.caption), [c.value for c in at.caption]


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


def test_first_start_builds_the_demo_in_a_background_job(tmp_path, monkeypatch):
    """No dataset configured: app.py starts `python -m audit prepare-demo` as a job (never a fork of
    the server), follows it, then shows the demo's overview with its predicted run."""
    from streamlit.testing.v1 import AppTest

    from audit import demo_setup, jobs, workspace

    monkeypatch.delenv("MASK_AUDIT_DATA", raising=False)
    monkeypatch.setattr(demo_setup, "prepare_demo_argv",  # the real job, at a test's size
                        lambda: ["prepare-demo", "--people", "4", "--eval", "8", "--workers", "1"])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    status = jobs.job_status(demo_setup.demo_job_dir())
    assert status.state == "done" and status.total > 0, status
    assert (workspace.demo_data_dir() / "demo.json").is_file() and demo_setup.demo_run_is_ready()
    assert at.title[0].value == "Overview"
    assert {m.label: m.value for m in at.metric}["Images"] == f"{4 * 7 + 8:,}"
    assert not list(workspace.workspace_dir().glob(".demo.building-*"))
    # a second run finds the demo ready and starts nothing
    started = status.started
    at.run()
    assert jobs.job_status(demo_setup.demo_job_dir()).started == started
    assert at.session_state["run_dir"] == str(demo_setup.demo_run_dir())


def test_a_failed_first_start_says_why_and_offers_a_retry(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from audit import demo_setup

    monkeypatch.delenv("MASK_AUDIT_DATA", raising=False)
    monkeypatch.setattr(demo_setup, "prepare_demo_argv", lambda: ["prepare-demo", "--people", "0"])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert "--people must be >= 1" in at.error[0].value and "python -m audit prepare-demo" in at.error[0].value
    assert at.button(key="job_try_again_prepare-demo")


def test_a_stale_build_folder_is_removed_by_the_next_start(tmp_path):
    """A first start killed mid-drawing leaves `.demo.building-*`: the next build removes it."""
    from audit import demo_setup, workspace

    stale = workspace.workspace_dir() / ".demo.building-deadbeef"
    (stale / "images" / "train").mkdir(parents=True)
    other = workspace.workspace_dir() / "mine"  # not a name the build makes: never touched
    other.mkdir()
    assert demo_setup.remove_stale_temporaries() == [stale]
    assert not stale.exists() and other.is_dir()


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
