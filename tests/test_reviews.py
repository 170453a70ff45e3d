"""ReviewStore: validation, history and latest-wins, two writing processes, a writer killed mid-loop."""
import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pandas as pd
import pytest

from audit.labels import COMPETITION_BINS, DEFAULT_BINS
from audit.reviews import COLUMNS, ReviewStore

FP = "fingerprint-abc"


@pytest.fixture
def store(tmp_path):
    return ReviewStore(tmp_path / "reviews.sqlite")


def test_creates_wal_database(tmp_path):
    ReviewStore(tmp_path / "sub" / "reviews.sqlite")
    con = sqlite3.connect(tmp_path / "sub" / "reviews.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_history_keeps_every_decision_and_latest_wins(store):
    store.record(FP, "images/train/p1/normal.jpg", "mask", "accept", given=2, suggested=1, note="swap?")
    store.record(FP, "images/train/p1/normal.jpg", "mask", "keep", given=2, suggested=1, note="no, fine")
    store.record(FP, "p1_male_Asian_30", "gender", "set", given=0, new_value=1, person="p1_male_Asian_30")
    store.record(FP, "images/train/p1/normal.jpg", "mask", "set", given=2, suggested=1, new_value=0)
    store.record("other-dataset", "images/train/p1/normal.jpg", "mask", "skip", given=2)

    hist = store.history(FP, "images/train/p1/normal.jpg", "mask")
    assert list(hist.columns) == list(COLUMNS)
    assert hist["decision"].tolist() == ["accept", "keep", "set"]
    assert hist["new_value"].tolist() == [1, 2, 0]
    assert hist["note"].tolist() == ["swap?", "no, fine", ""]
    assert hist["id"].is_monotonic_increasing
    created = pd.to_datetime(hist["created"])
    assert str(created.dt.tz) == "UTC" and created.is_monotonic_increasing

    latest = store.latest(FP)
    assert len(latest) == 2  # one row per (item, field); the other dataset's row is not here
    row = latest.set_index("item").loc["images/train/p1/normal.jpg"]
    assert row["decision"] == "set" and row["new_value"] == 0
    assert latest.set_index("item").loc["p1_male_Asian_30", "new_value"] == 1
    assert len(store.history(FP)) == 4
    assert store.fingerprints() == sorted([FP, "other-dataset"])

    counts = store.counts(FP).set_index(["field", "decision"])["count"]
    assert counts.to_dict() == {("gender", "set"): 1, ("mask", "set"): 1}


def test_decision_values(store):
    assert store.record(FP, "a.png", "gender", "accept", given=0, suggested=1) > 0
    store.record(FP, "b.png", "gender", "keep", given=0, suggested=1)
    store.record(FP, "c.png", "gender", "skip", given=0, suggested=1)
    store.record(FP, "d.png", "age", "set", given=0, new_age=41)
    store.record(FP, "e.png", "age", "set", given=2, new_age=35, bins=COMPETITION_BINS)
    store.record(FP, "f.png", "age", "set", given=2, new_value=0)
    latest = store.latest(FP).set_index("item")
    assert latest.loc["a.png", "new_value"] == 1
    assert latest.loc["b.png", "new_value"] == 0
    assert pd.isna(latest.loc["c.png", "new_value"])
    assert latest.loc["d.png", "new_value"] == DEFAULT_BINS.bin(41) == 2
    assert latest.loc["d.png", "new_age"] == 41 and latest.loc["d.png", "bins"] == "25,40"
    assert latest.loc["e.png", "new_value"] == 1 and latest.loc["e.png", "bins"] == "30,60"
    assert pd.isna(latest.loc["f.png", "new_age"])
    assert latest.loc["a.png", "bins"] == ""  # only age codes depend on bins


@pytest.mark.parametrize("kwargs, message", [
    (dict(field="colour", decision="keep", given=0), "field must be one of"),
    (dict(field="mask", decision="approve", given=0), "decision must be one of"),
    (dict(field="mask", decision="keep", given=3), "not a mask code"),
    (dict(field="gender", decision="set", given=0, new_value=2), "not a gender code"),
    (dict(field="gender", decision="set", given=0), "'set' needs new_value"),
    (dict(field="gender", decision="accept", given=0), "'accept' needs the suggested value"),
    (dict(field="gender", decision="accept", given=0, suggested=1, new_value=0), "'accept' means"),
    (dict(field="mask", decision="keep", given=0, new_value=1), "'keep' means"),
    (dict(field="gender", decision="set", given=0, new_age=30), "only applies to the age field"),
    (dict(field="age", decision="set", given=0, new_age=300), "0..120 years"),
    (dict(field="age", decision="set", given=0, new_age=30, new_value=0), "disagrees with new_age"),
    (dict(field="mask", decision="keep", given=1.5), "integer label code"),
])
def test_rejects_bad_input(store, kwargs, message):
    field, decision = kwargs.pop("field"), kwargs.pop("decision")
    with pytest.raises(ValueError, match=message):
        store.record(FP, "a.png", field, decision, **kwargs)
    assert store.history(FP).empty  # nothing half-written


def test_rejects_missing_keys(store):
    with pytest.raises(ValueError, match="fingerprint"):
        store.record("", "a.png", "mask", "keep", given=0)
    with pytest.raises(ValueError, match="item"):
        store.record(FP, "", "mask", "keep", given=0)


def test_undo_appends_previous_state(store):
    assert store.undo_last(FP) is None
    store.record(FP, "a.png", "mask", "accept", given=0, suggested=1, note="first")
    store.record(FP, "a.png", "mask", "set", given=0, suggested=1, new_value=2)
    store.undo_last(FP, "a.png", "mask")
    row = store.latest(FP).iloc[0]
    assert row["decision"] == "accept" and row["new_value"] == 1 and row["note"] == "first"
    store.undo_last(FP, "a.png", "mask")  # undoing the undo's predecessor... goes back to 'set'
    assert store.latest(FP).iloc[0]["decision"] == "set"
    assert len(store.history(FP)) == 4  # undo never deletes


def test_undo_of_first_decision_is_skip(store):
    store.record(FP, "a.png", "age", "set", given=0, new_age=50)
    store.undo_last(FP)
    row = store.latest(FP).iloc[0]
    assert row["decision"] == "skip" and pd.isna(row["new_value"])


def test_one_store_shared_by_threads(store):
    """Streamlit shares one cached store between the threads of all sessions."""
    import threading

    errors = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                store.record(FP, f"t{t}/img{i}.jpg", "gender", "set", given=0, new_value=1)
                store.latest(FP)
        except Exception as err:  # collected: an exception in a thread would not fail the test
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.latest(FP)) == 160


# -- several processes --------------------------------------------------------------------------

def _write_many(path, writer: int, n: int, start_event) -> None:
    store = ReviewStore(path)
    start_event.wait()
    for i in range(n):
        # Every writer also rewrites a shared item, so writes collide on the same key.
        store.record(FP, f"w{writer}/img{i:04d}.jpg", "mask", "set", given=0, new_value=i % 3,
                     note=f"writer {writer}, #{i}, «ü, 한국어»")
        store.record(FP, "shared.jpg", "gender", "set", given=0, new_value=writer % 2, note=f"{writer}:{i}")


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "reviews.sqlite"
    ReviewStore(path)
    # fork, not spawn: spawn re-runs __main__, which an earlier AppTest may have pointed at a page file.
    ctx = mp.get_context("fork")
    start = ctx.Event()
    n = 200
    procs = [ctx.Process(target=_write_many, args=(path, w, n, start)) for w in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, f"writer exited with {p.exitcode}"
    store = ReviewStore(path)
    hist = store.history(FP)
    assert len(hist) == 2 * 2 * n
    for w in (1, 2):
        mine = hist[hist["item"].str.startswith(f"w{w}/")]
        assert sorted(mine["item"]) == [f"w{w}/img{i:04d}.jpg" for i in range(n)]
        assert mine["note"].iloc[0].endswith("«ü, 한국어»")
    assert len(store.latest(FP)) == 2 * n + 1
    shared = hist[hist["item"] == "shared.jpg"]
    # The latest row for the shared key is whichever process wrote last, by id.
    assert store.latest(FP).set_index("item").loc["shared.jpg", "note"] == shared["note"].iloc[-1]


def _write_until_killed(path, conn) -> None:
    store = ReviewStore(path)
    i = 0
    while True:
        row_id = store.record(FP, f"img{i:06d}.jpg", "age", "set", given=0, new_age=20 + i % 50,
                              note="x" * (i % 200))
        conn.send((i, row_id))  # acknowledged only after record() returned (= committed)
        i += 1


def test_writer_killed_mid_loop_keeps_every_acknowledged_decision(tmp_path):
    path = tmp_path / "reviews.sqlite"
    ReviewStore(path)
    # fork, not spawn: spawn re-runs __main__, which an earlier AppTest may have pointed at a page file.
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_write_until_killed, args=(path, sender))
    proc.start()
    sender.close()
    acked = []
    deadline = time.monotonic() + 60
    while len(acked) < 150 and time.monotonic() < deadline:
        if receiver.poll(1):
            acked.append(receiver.recv())
    os.kill(proc.pid, signal.SIGKILL)  # mid-loop, most likely inside a transaction
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    try:
        while receiver.poll(0.2):
            acked.append(receiver.recv())
    except EOFError:
        pass
    assert len(acked) >= 150

    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = ReviewStore(path)
    hist = store.history(FP).set_index("id")
    for i, row_id in acked:
        assert row_id in hist.index, f"acknowledged decision #{i} (id {row_id}) was lost"
        assert hist.loc[row_id, "item"] == f"img{i:06d}.jpg"
        assert hist.loc[row_id, "new_age"] == 20 + i % 50
    # The store still takes writes after the crash.
    store.record(FP, "after.jpg", "mask", "keep", given=1)
    assert "after.jpg" in set(store.latest(FP)["item"])


def test_reviewer_column_and_older_files_get_it(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)  # a file from before the reviewer column existed
    con.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, "
                "item TEXT NOT NULL, field TEXT NOT NULL, decision TEXT NOT NULL, given INTEGER, suggested INTEGER, "
                "new_value INTEGER, new_age INTEGER, bins TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '', "
                "split TEXT NOT NULL DEFAULT '', person TEXT NOT NULL DEFAULT '', path TEXT NOT NULL DEFAULT '', "
                "detectors TEXT NOT NULL DEFAULT '', score REAL, created TEXT NOT NULL)")
    con.execute("INSERT INTO decisions (fingerprint, item, field, decision, given, new_value, created) "
                "VALUES (?, 'a.png', 'mask', 'keep', 1, 1, '2026-01-01T00:00:00+00:00')", (FP,))
    con.commit()
    con.close()
    store = ReviewStore(path)
    store.record(FP, "b.png", "mask", "keep", given=0, reviewer="kim")
    latest = store.latest(FP).set_index("item")
    assert latest.loc["a.png", "reviewer"] == "" and latest.loc["b.png", "reviewer"] == "kim"


# -- batches, undo of a batch, reviewers who disagree ----------------------------------------------

def _bulk(n, **extra):
    return [dict(item=f"img{i:04d}.png", field="gender", decision="accept", given=0, suggested=1, **extra)
            for i in range(n)]


def test_record_many_is_one_transaction_all_or_none(store):
    batch = _bulk(3) + [dict(item="bad.png", field="gender", decision="accept", given=0)]  # no suggestion
    with pytest.raises(ValueError, match="decision 3"):
        store.record_many(FP, batch)
    assert store.history(FP).empty  # nothing half-written
    ids = store.record_many(FP, _bulk(3), reviewer="ann", source="fixes.csv")
    assert len(ids) == 3 and ids == sorted(ids)
    hist = store.history(FP)
    assert hist["reviewer"].tolist() == ["ann"] * 3 and hist["source"].tolist() == ["fixes.csv"] * 3
    assert hist["new_value"].tolist() == [1, 1, 1]


def test_record_many_thousand_items_within_three_seconds(store):
    start = time.perf_counter()
    ids = store.record_many(FP, _bulk(1000), reviewer="ann")
    seconds = time.perf_counter() - start
    assert len(ids) == 1000 and len(store.latest(FP)) == 1000
    assert seconds < 3.0, f"1,000 decisions took {seconds:.2f} s"


def test_undo_of_a_batch_restores_each_item(store):
    store.record(FP, "img0000.png", "gender", "keep", given=0, suggested=1)
    ids = store.record_many(FP, _bulk(3))
    store.undo(FP, ids, reviewer="bob")
    latest = store.latest(FP).set_index("item")
    assert latest.loc["img0000.png", "decision"] == "keep"        # the state before the batch
    assert latest.loc["img0001.png", "decision"] == "skip"        # first decision undone -> skip
    assert set(latest["reviewer"]) == {"bob"}
    assert len(store.history(FP)) == 1 + 3 + 3                     # undo never deletes


def test_keep_age_marks_the_bin_only(store):
    store.record(FP, "p1", "age", "set", given=0, new_value=1, keep_age=True)
    assert bool(store.latest(FP)["keep_age"].iloc[0]) is True
    with pytest.raises(ValueError, match="keep_age"):
        store.record(FP, "p1", "age", "set", given=0, new_age=30, keep_age=True)
    with pytest.raises(ValueError, match="keep_age"):
        store.record(FP, "p1", "gender", "set", given=0, new_value=1, keep_age=True)


def test_conflicts_and_agreement(store):
    # a: ann and bob disagree; b: they agree; c: they disagree, then cat settles it
    store.record(FP, "a", "gender", "set", given=0, new_value=1, reviewer="ann")
    store.record(FP, "a", "gender", "keep", given=0, reviewer="bob")
    store.record(FP, "b", "gender", "set", given=0, new_value=1, reviewer="ann")
    store.record(FP, "b", "gender", "set", given=0, new_value=1, reviewer="bob")
    store.record(FP, "c", "mask", "set", given=0, new_value=1, reviewer="ann")
    store.record(FP, "c", "mask", "set", given=0, new_value=2, reviewer="bob")
    store.record(FP, "c", "mask", "set", given=0, new_value=2, reviewer="cat")
    store.record(FP, "d", "mask", "skip", given=0, reviewer="bob")  # skips are no vote
    store.record(FP, "d", "mask", "keep", given=0, reviewer="ann")
    conflicts = store.conflicts(FP).set_index("item")
    assert sorted(conflicts.index) == ["a", "c"]
    assert not conflicts.loc["a", "resolved"] and conflicts.loc["a", "votes"] == "ann: 1; bob: 0"
    assert conflicts.loc["c", "resolved"] and conflicts.loc["c", "resolved_by"] == "cat"
    assert conflicts.loc["c", "value"] == 2
    agreement = store.agreement(FP).set_index("field")
    assert (agreement.loc["gender", "items"], agreement.loc["gender", "agree"]) == (2, 1)
    assert agreement.loc["mask", "items"] == 1 and agreement.loc["mask", "agreement"] == 0.0
    assert agreement.loc["age", "items"] == 0


def test_export_keeps_the_age_when_only_the_bin_is_marked(tmp_path):
    """keep_age: the bin changes in images.csv; train.csv keeps the age and the folder name, and
    the preview says what is renamed and which ages are set."""
    from test_app_support import write_seed_dataset
    from audit.dataset_index import index_dataset
    from audit.export import age_bin_middle, corrected_manifests, manifest_preview, relabel_frame

    root = tmp_path / "data"
    write_seed_dataset(root, people=3, eval_images=2)
    index = index_dataset(root)
    store = ReviewStore(tmp_path / "r.sqlite")
    people = index.images[index.images["split"] == "train"].drop_duplicates("person")
    kept, typed = people.iloc[0], people.iloc[1]
    kept_bin = (int(kept["age_bin"]) + 1) % 3
    typed_bin = (int(typed["age_bin"]) + 1) % 3
    store.record(index.fingerprint, kept["person"], "age", "set", given=int(kept["age_bin"]), new_value=kept_bin,
                 keep_age=True)
    store.record(index.fingerprint, typed["person"], "age", "set", given=int(typed["age_bin"]),
                 new_age=age_bin_middle(typed_bin))
    decisions = relabel_frame(store, index.fingerprint, index.images)
    row = decisions.set_index("item").loc[kept["person"]]
    assert (row["new_age"], row["new_age_source"]) == (int(kept["age"]), "kept")
    out = corrected_manifests(index.root, index.layout, decisions, index.images, bins=index.bins)
    train = out["train.csv"].set_index("path")
    folder = kept["path"].split("/")[-2]
    assert train.loc[folder, "age"] == str(int(kept["age"])) and train.loc[folder, "corrected_path"] == folder
    assert train.loc[folder, "changed_fields"] == "age_bin"
    images = out["images.csv"]
    mine = images[images["person"] == kept["person"]]
    assert (mine["corrected_age_bin"] == kept_bin).all() and (mine["corrected_age"] == int(kept["age"])).all()
    preview = manifest_preview(index.root, index.layout, decisions, index.images, bins=index.bins).set_index("old")
    assert not preview.loc[folder, "renamed"] and preview.loc[folder, "age_source"] == "kept"
    other = typed["path"].split("/")[-2]
    assert preview.loc[other, "renamed"] and preview.loc[other, "new_age"] == age_bin_middle(typed_bin)
    assert preview.loc[other, "new"].endswith(f"_{age_bin_middle(typed_bin)}")
