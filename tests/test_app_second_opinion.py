"""Label noise: another run of the same images, chosen on the page, joins the queue as a second
opinion (issue #13: evidence from a model that never learned these labels)."""
from __future__ import annotations

import pandas as pd

from test_app_support import AppData, page_test, write_synthetic_run


def test_a_second_opinion_run_chosen_on_the_page_joins_the_queue(app_data, tmp_path, monkeypatch):
    import shutil

    ws = tmp_path / "ws"
    run = shutil.copytree(app_data.run, ws / "runs" / "main")
    (run / "suspects.parquet").unlink()
    write_synthetic_run(app_data.index, ws / "runs" / "main-pretrained", seed=7, suspects=False)
    monkeypatch.setenv("MASK_AUDIT_WORKSPACE", str(ws))
    data = AppData(root=app_data.root, run=run, workspace=ws, index=app_data.index)
    at = page_test("label_noise", data).run()
    assert not at.exception, at.exception
    choice = at.selectbox(key="label_noise_second_opinion")
    assert choice.value == str(ws / "runs" / "main-pretrained")  # the pretrained run is the default
    at.button(key="label_noise_compute").click().run()
    assert not at.exception, at.exception
    queue = pd.read_parquet(run / "suspects.parquet")
    assert "score_second_opinion" in queue.columns and queue["score_second_opinion"].notna().any()
