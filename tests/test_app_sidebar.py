"""The sidebar's data-folder box: only an explicit Open changes the dataset (an early navigation
can never switch a session to the demo), and MASK_AUDIT_DATA_ROOTS limits what it may open."""
from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(REPO / "app.py"), default_timeout=60)


# AppTest keeps the sidebar of app.py's first run only (a rerun of the router comes back without
# it, on the code before this change too), so each check below starts a fresh AppTest and reads
# session state after a click.

def test_a_lost_widget_state_never_switches_the_dataset(app_data):
    at = _app()
    # What a page link clicked before the sidebar was drawn did: the box came back empty.
    at.session_state["sidebar_data_dir"] = ""
    at.run()
    assert not at.exception and at.title[0].value == "Overview"
    assert at.session_state["data_dir"] == str(app_data.root)  # an empty box alone changes nothing
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Demo dataset" not in captions and str(app_data.root) in captions


def _open(app_data, value: str):
    at = _app().run()
    assert at.session_state["data_dir"] == str(app_data.root)
    at.text_input(key="sidebar_data_dir").set_value(value)
    at.button(key="FormSubmitter:sidebar_data_form-Open").click().run()
    assert not at.exception, at.exception
    return at


def test_open_switches_to_a_typed_folder(app_data, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(app_data.root, other)
    at = _open(app_data, str(other))
    assert at.session_state["data_dir"] == str(other)
    assert at.session_state["run_dir"] != str(app_data.run)  # a run belongs to one dataset


def test_folders_outside_the_allowed_roots_are_refused(app_data, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "inside").mkdir(parents=True)
    (allowed / "link").symlink_to(app_data.root)  # inside by name, outside once resolved
    monkeypatch.setenv("MASK_AUDIT_DATA_ROOTS", str(allowed))
    # The folder the server was started with stays allowed.
    at = _app().run()
    assert not at.exception and at.session_state["data_dir"] == str(app_data.root)
    for outside in ("/etc", str(allowed / ".." / "elsewhere"), str(allowed / "link")):
        at = _open(app_data, outside)
        assert at.session_state["data_dir"] == str(app_data.root), outside
        assert "outside the folders this server may open" in at.session_state["sidebar_data_problem"]
    at = _open(app_data, str(allowed / "inside"))
    assert at.session_state["data_dir"] == str(allowed / "inside")
