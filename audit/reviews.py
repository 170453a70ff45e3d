"""Review decisions on label-noise suspects, stored at once in SQLite with full history.

A decision is about one (item, field) of one dataset:

- `fingerprint`: `DatasetIndex.fingerprint`, so decisions never leak onto another dataset;
- `item`: the review queue's `item` — a data-relative image path (mask, eval rows) or, for
  person-level items (train gender/age), the person key `{id}_{gender}_{race}_{age}`;
- `field`: "mask", "gender" or "age".

Decision kinds (`DECISIONS`):

- "accept": the suggested value is right; `new_value` = `suggested`;
- "keep":   the given label is right; `new_value` = `given`;
- "set":    another value; `new_value` given by the reviewer (for age: a bin code, or an explicit
            age in years as `new_age`, from which the bin follows);
- "skip":   undecided, look later; `new_value` is NULL.

Values are label codes from `audit.labels` (mask 0..2, gender 0..1, age: bin code 0..2 under the
`bins` stored with the row). Age in years is kept separately in `new_age` (only when the reviewer
typed one), so a bin decision and an exact age never get confused; the export turns a bin-only
decision into an age in years (see `audit.export`).

Who and where from: `reviewer` (free text, e.g. the login name) and `source` ("" for the app, or
the file name of an imported relabel list, see `audit.review_import`). `keep_age` marks an age-bin
decision whose reviewer chose to keep the given age in years and only mark the bin (the export then
changes no age and renames no folder, see `audit.export`).

`record_many` stores a batch (a bulk decision, an imported list) in ONE transaction: all or none.
`conflicts` lists items two reviewers decided differently; `agreement` sums them up per field.

Every call to `record` is one short transaction, committed (synchronous=FULL, WAL) before it
returns, so whatever the page acknowledged survives the server being killed. Rows are never
updated or deleted: history is the table, and the latest row (highest id) per
(fingerprint, item, field) wins. "Undo" is a new row restoring the previous state, so undo is
history too. Each call opens its own connection, so one store object may be shared by the threads
of a Streamlit server (a lock serialises them; SQLite allows one writer anyway) and several
processes may write the same file at once (WAL + busy_timeout). The connection is kept open: the
last connection closing checkpoints the WAL, which would cost every write ~15 ms of fsync.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from audit.labels import DEFAULT_BINS, FIELD_INFO, FIELDS, AgeBins

DECISIONS = ("accept", "keep", "set", "skip")
# A data-quality decision on one image file (audit.quality): keep it, or exclude it from the
# corrected manifests (audit.export.excluded_files). Not a label: the relabeling list skips it.
FILE_FIELD, FILE_KEEP, FILE_EXCLUDE = "file", 0, 1
# Number of codes of each thing a decision is about (valid codes are 0..n-1): the label fields, and files.
FIELD_CODES = {**{f.name: f.n_codes for f in FIELD_INFO.values()}, FILE_FIELD: 2}
MAX_AGE_YEARS = 120
BUSY_TIMEOUT_MS = 30_000

COLUMNS = (
    "id", "fingerprint", "item", "field", "decision", "given", "suggested", "new_value", "new_age",
    "bins", "note", "split", "person", "path", "detectors", "score", "reviewer", "created", "source",
    "keep_age",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of writes; the latest wins
    fingerprint TEXT    NOT NULL,                   -- dataset fingerprint
    item        TEXT    NOT NULL,                   -- data-relative image path or person key
    field       TEXT    NOT NULL,                   -- mask | gender | age
    decision    TEXT    NOT NULL,                   -- accept | keep | set | skip
    given       INTEGER,                            -- label code as given in the data
    suggested   INTEGER,                            -- code the detectors suggested (NULL if none)
    new_value   INTEGER,                            -- decided code (NULL for skip)
    new_age     INTEGER,                            -- age in years, only when the reviewer typed one
    bins        TEXT    NOT NULL DEFAULT '',        -- 'lo,hi' age bins the age codes refer to
    note        TEXT    NOT NULL DEFAULT '',
    split       TEXT    NOT NULL DEFAULT '',
    person      TEXT    NOT NULL DEFAULT '',
    path        TEXT    NOT NULL DEFAULT '',        -- an image of the item (for a person: any)
    detectors   TEXT    NOT NULL DEFAULT '',
    score       REAL,
    reviewer    TEXT    NOT NULL DEFAULT '',        -- who decided (free text, e.g. the login name)
    created     TEXT    NOT NULL                    -- UTC, ISO 8601 with microseconds
);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions (fingerprint, item, field, id);
"""

# Columns added after the first files were written (rows never change, so a default is enough).
_ADDED_COLUMNS = {
    "reviewer": "TEXT NOT NULL DEFAULT ''",
    "source": "TEXT NOT NULL DEFAULT ''",     # '' = the app; else the imported file's name
    "keep_age": "INTEGER NOT NULL DEFAULT 0",  # 1: age bin decided, the given age in years kept
}
_INSERT = (f"INSERT INTO decisions ({', '.join(COLUMNS[1:])}) "
           f"VALUES ({', '.join('?' * (len(COLUMNS) - 1))})")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _optional_int(value, what: str):
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer label code, got {value!r}") from None
    if as_int != value:
        raise ValueError(f"{what} must be an integer label code, got {value!r}")
    return as_int


def _check_code(field: str, value, what: str):
    value = _optional_int(value, what)
    if value is not None and not 0 <= value < FIELD_CODES[field]:
        raise ValueError(f"{what}={value} is not a {field} code (expected 0..{FIELD_CODES[field] - 1})")
    return value


def _implied_value(decision: str, new_value, name: str, implied, missing: str):
    """The new value a decision implies (`implied`, the item's `name` value): ValueError (`missing`)
    when the item has none, or when `new_value` says otherwise."""
    if implied is None:
        raise ValueError(missing)
    if new_value is not None and new_value != implied:
        raise ValueError(f"'{decision}' means new_value = {name} ({implied}), got {new_value}")
    return implied


def _decision_row(fingerprint, item, field, decision, *, given, new_value=None, suggested=None,
                  new_age=None, bins: AgeBins = DEFAULT_BINS, note: str = "", split: str = "",
                  person: str = "", path: str = "", detectors: str = "", score=None, reviewer: str = "",
                  source: str = "", keep_age: bool = False) -> tuple:
    """One validated row for `_INSERT` (see `ReviewStore.record`); ValueError on bad input."""
    if not fingerprint or not isinstance(fingerprint, str):
        raise ValueError("fingerprint must be a non-empty string (the dataset fingerprint)")
    if not item or not isinstance(item, str):
        raise ValueError("item must be a non-empty string (an image path or a person key)")
    if field not in FIELD_CODES:
        raise ValueError(f"field must be one of {', '.join(FIELD_CODES)}; got {field!r}")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}; got {decision!r}")
    given = _check_code(field, given, "given")
    suggested = _check_code(field, suggested, "suggested")
    new_value = _check_code(field, new_value, "new_value")
    new_age = _optional_int(new_age, "new_age")
    if new_age is not None:
        if field != "age":
            raise ValueError(f"new_age (years) only applies to the age field, not {field!r}")
        if decision != "set":
            raise ValueError("new_age (years) only goes with decision 'set'")
        if not 0 <= new_age <= MAX_AGE_YEARS:
            raise ValueError(f"new_age must be 0..{MAX_AGE_YEARS} years, got {new_age}")
        age_bin = bins.bin(new_age)
        if new_value is not None and new_value != age_bin:
            raise ValueError(f"new_value={new_value} disagrees with new_age={new_age} (bin {age_bin} of {bins.describe()})")
        new_value = age_bin
    keep_age = bool(keep_age)
    if keep_age and (field != "age" or new_age is not None or decision not in ("accept", "set")):
        raise ValueError("keep_age (keep the given age, mark the bin only) goes with an age bin 'set' or 'accept' "
                         "without new_age")
    if decision == "accept":
        new_value = _implied_value("accept", new_value, "suggested", suggested,
                                   "'accept' needs the suggested value (the item has no suggestion: use 'set')")
    elif decision == "keep":
        new_value = _implied_value("keep", new_value, "given", given, "'keep' needs the given value")
    elif decision == "set":
        if new_value is None:
            raise ValueError("'set' needs new_value (a label code) or, for age, new_age in years")
    else:  # skip
        new_value = None
    score = None if score is None or pd.isna(score) else float(score)
    return (fingerprint, item, field, decision, given, suggested, new_value, new_age,
            f"{bins.lo},{bins.hi}" if field == "age" else "", str(note or ""), str(split or ""),
            str(person or ""), str(path or ""), str(detectors or ""), score, str(reviewer or ""), _utc_now(),
            str(source or ""), int(keep_age))


class ReviewStore:
    """Decisions of reviewers, one SQLite file (e.g. `workspace/reviews.sqlite`)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = None
        with closing(self._open()) as con:
            # WAL: readers never block the writer and a killed writer leaves a consistent file.
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(f"cannot use WAL mode for {self.path} (got {mode!r}); is it on a network drive?")
            with con:
                con.executescript(_SCHEMA)
                # Files made before a column existed get it (rows never change, so a default is enough).
                have = {r[1] for r in con.execute("PRAGMA table_info(decisions)")}
                for name, decl in _ADDED_COLUMNS.items():
                    if name not in have:
                        con.execute(f"ALTER TABLE decisions ADD COLUMN {name} {decl}")

    def __repr__(self) -> str:
        return f"ReviewStore({str(self.path)!r})"

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE) so a write takes
        # the lock up front instead of failing half-way with "database is locked".
        # check_same_thread=False: Streamlit runs each rerun in its own thread; `_lock` makes sure
        # only one thread uses the connection at a time.
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                              check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # FULL: a committed decision is on disk before record() returns (NORMAL could lose the
        # last ones on power loss; reviews are slow human work, the fsync costs nothing here).
        con.execute("PRAGMA synchronous=FULL")
        return con

    @contextmanager
    def _connection(self):
        """This process's connection, used by one thread at a time."""
        with self._lock:
            # A connection must not cross a fork: a child process opens its own.
            if self._con is None or self._pid != os.getpid():
                self._con, self._pid = self._open(), os.getpid()
            yield self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None and self._pid == os.getpid():
                self._con.close()
            self._con = None

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._lock, self._con, self._pid = threading.Lock(), None, None

    # -- writing ---------------------------------------------------------------------------------

    def record(self, fingerprint: str, item: str, field: str, decision: str, *, given,
               new_value=None, suggested=None, new_age=None, bins: AgeBins = DEFAULT_BINS,
               note: str = "", split: str = "", person: str = "", path: str = "",
               detectors: str = "", score: float | None = None, reviewer: str = "",
               source: str = "", keep_age: bool = False) -> int:
        """Store one decision and commit it; returns its row id. ValueError on bad input.

        `given`, `suggested`, `new_value` are label codes of `field`. For "accept" `new_value`
        defaults to `suggested`, for "keep" to `given`; "set" needs `new_value` or (age only)
        `new_age` in years, whose bin under `bins` becomes `new_value`. `keep_age` (age only, not
        with `new_age`): the bin changes, the given age in years stays.
        """
        row = _decision_row(fingerprint, item, field, decision, given=given, new_value=new_value,
                            suggested=suggested, new_age=new_age, bins=bins, note=note, split=split,
                            person=person, path=path, detectors=detectors, score=score,
                            reviewer=reviewer, source=source, keep_age=keep_age)
        return self._insert([row])[0]

    def record_many(self, fingerprint: str, decisions, *, reviewer: str | None = None,
                    source: str | None = None) -> list[int]:
        """Store many decisions in ONE transaction (all or none); returns their row ids in order.

        `decisions`: an iterable of dicts with `item`, `field`, `decision` and the keyword arguments
        of `record` (`given`, `suggested`, `new_value`, `new_age`, `note`, ...). `reviewer` /
        `source`, when given, apply to every decision. Every row is validated before anything is
        written: ValueError names the first bad one (0-based position) and nothing is stored.
        """
        rows = []
        for n, d in enumerate(decisions):
            d = dict(d)
            if reviewer is not None:
                d["reviewer"] = reviewer
            if source is not None:
                d["source"] = source
            try:
                rows.append(_decision_row(fingerprint, d.pop("item", None), d.pop("field", None),
                                          d.pop("decision", None), **d))
            except (TypeError, ValueError) as err:
                raise ValueError(f"decision {n}: {err}") from None
        return self._insert(rows)

    def _insert(self, rows: list[tuple]) -> list[int]:
        """Insert validated rows in one transaction, committed before returning their ids."""
        if not rows:
            return []
        with self._connection() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                ids = [int(con.execute(_INSERT, row).lastrowid) for row in rows]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return ids

    def undo_last(self, fingerprint: str, item: str | None = None, field: str | None = None,
                  *, reviewer: str | None = None) -> int | None:
        """Undo the newest decision (of one item/field if given) by appending the state before it.

        Returns the id of the new row, or None when there was nothing to undo. When the undone
        decision was the first for its item and field, the restored state is a "skip".
        """
        hist = self.history(fingerprint, item, field)
        if hist.empty:
            return None
        return self.undo(fingerprint, [int(hist["id"].iloc[-1])], reviewer=reviewer)[0]

    def undo(self, fingerprint: str, ids, *, reviewer: str | None = None) -> list[int]:
        """Undo the decisions with these row ids (e.g. one bulk decision) in ONE transaction: for
        each, append the state its item and field had before it (a "skip" if it was the first).
        `reviewer`: who undoes (default: the undone row's reviewer). Returns the new row ids."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        hist = self.history(fingerprint)
        by_id = hist.set_index("id", drop=False)
        rows = []
        for row_id in ids:
            if row_id not in by_id.index:
                raise ValueError(f"no decision {row_id} for this dataset")
            last = by_id.loc[row_id]
            same = hist[(hist["item"] == last["item"]) & (hist["field"] == last["field"]) & (hist["id"] < row_id)]
            common = dict(given=last["given"], suggested=last["suggested"], split=last["split"],
                          person=last["person"], path=last["path"], detectors=last["detectors"],
                          score=last["score"], bins=bins_from_text(last["bins"]),
                          reviewer=last["reviewer"] if reviewer is None else reviewer)
            if same.empty:
                rows.append(_decision_row(fingerprint, last["item"], last["field"], "skip",
                                          note=f"undo of decision {row_id}", **common))
                continue
            prev = same.iloc[-1]
            rows.append(_decision_row(fingerprint, prev["item"], prev["field"], prev["decision"],
                                      new_value=prev["new_value"] if pd.isna(prev["new_age"]) else None,
                                      new_age=prev["new_age"], note=prev["note"], source=prev["source"],
                                      keep_age=bool(prev["keep_age"]), **common))
        return self._insert(rows)

    # -- reading ---------------------------------------------------------------------------------

    def _frame(self, sql: str, params) -> pd.DataFrame:
        with self._connection() as con:
            rows = con.execute(sql, params).fetchall()
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        for col in ("given", "suggested", "new_value", "new_age"):
            frame[col] = frame[col].astype("Int64")  # nullable ints: skip rows have no value
        frame["id"] = frame["id"].astype("int64")
        frame["score"] = frame["score"].astype("float64")
        frame["keep_age"] = frame["keep_age"].astype(bool)
        return frame

    def history(self, fingerprint: str, item: str | None = None, field: str | None = None) -> pd.DataFrame:
        """Every decision of a dataset (optionally one item and/or field), oldest first; COLUMNS."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM decisions WHERE fingerprint = ?"
        params: list = [fingerprint]
        if item is not None:
            sql += " AND item = ?"
            params.append(item)
        if field is not None:
            sql += " AND field = ?"
            params.append(field)
        return self._frame(sql + " ORDER BY id", params)

    def latest(self, fingerprint: str) -> pd.DataFrame:
        """The current decision per (item, field) of a dataset: one row each, COLUMNS, by id."""
        sql = (f"SELECT {', '.join('d.' + c for c in COLUMNS)} FROM decisions d JOIN ("
               "SELECT MAX(id) AS id FROM decisions WHERE fingerprint = ? GROUP BY item, field"
               ") m ON d.id = m.id ORDER BY d.id")
        return self._frame(sql, [fingerprint])

    def counts(self, fingerprint: str) -> pd.DataFrame:
        """Current decisions counted by field and decision: columns field, decision, count."""
        latest = self.latest(fingerprint)
        if latest.empty:
            return pd.DataFrame({"field": pd.Series(dtype=str), "decision": pd.Series(dtype=str),
                                 "count": pd.Series(dtype="int64")})
        return (latest.groupby(["field", "decision"]).size().rename("count").reset_index())

    _SHARED_ITEMS_SQL = (
        f"SELECT {', '.join(COLUMNS)} FROM decisions WHERE fingerprint = ? AND decision != 'skip' "
        "AND (item, field) IN (SELECT item, field FROM decisions WHERE fingerprint = ? "
        "AND decision != 'skip' GROUP BY item, field HAVING COUNT(DISTINCT reviewer) >= 2) ORDER BY id")

    def _votes_of_shared_items(self, fingerprint: str) -> pd.DataFrame:
        """History rows (no skips) of the items that two or more reviewers decided, oldest first.
        The cut is made in SQL: most items have one reviewer, and pages ask on every rerun."""
        return self._frame(self._SHARED_ITEMS_SQL, [fingerprint, fingerprint])

    def conflicts(self, fingerprint: str) -> pd.DataFrame:
        """Items two or more reviewers decided differently: one row per (item, field).

        Walks each item's history: every reviewer's latest value (skips ignored) is their vote.
        A conflict opens when two votes differ; the reviewers voting then are its `parties`. It is
        `resolved` once a reviewer outside the parties decided after it opened and that decision is
        the item's latest (a third reviewer settles it). Votes that came to agree again are no
        conflict. Columns: item, field, votes ("alice: 1; bob: 0", codes), parties, resolved,
        resolved_by, value (the latest decided code), given, suggested, split, person, path, created.
        """
        with self._connection() as con:
            hist = con.execute(self._SHARED_ITEMS_SQL, [fingerprint, fingerprint]).fetchall()
        # Plain dicts and lists, no frame: per-group pandas access costs milliseconds a group, and
        # Label noise asks on every keyed decision (a frame of no rows alone cost ~5 ms there).
        groups: dict[tuple, list[dict]] = {}
        for r in (dict(zip(COLUMNS, row)) for row in hist):
            groups.setdefault((r["item"], r["field"]), []).append(r)
        out = []
        for (item, field), rows in groups.items():
            votes: dict[str, int] = {}
            parties: tuple = ()
            opened_at = None
            for r in rows:
                votes[r["reviewer"]] = int(r["new_value"])
                if not parties and len(set(votes.values())) > 1:
                    parties, opened_at = tuple(sorted(votes)), r["id"]
            if not parties:
                continue
            last = rows[-1]
            resolved = bool(last["reviewer"] not in parties and last["id"] > opened_at)
            if not resolved and len(set(votes[p] for p in parties if p in votes)) == 1:
                continue  # the parties agree again
            out.append({"item": item, "field": field,
                        "votes": "; ".join(f"{who or '(no name)'}: {v}" for who, v in sorted(votes.items())),
                        "parties": ", ".join(p or "(no name)" for p in parties), "resolved": resolved,
                        "resolved_by": str(last["reviewer"]) if resolved else "",
                        "value": int(last["new_value"]), "given": last["given"], "suggested": last["suggested"],
                        "split": last["split"], "person": last["person"], "path": last["path"],
                        "created": last["created"]})
        cols = ["item", "field", "votes", "parties", "resolved", "resolved_by", "value", "given", "suggested",
                "split", "person", "path", "created"]
        return pd.DataFrame(out, columns=cols)

    def agreement(self, fingerprint: str) -> pd.DataFrame:
        """Per field, over items decided (not skipped) by 2+ reviewers: how often their latest
        values all agree. Columns field, items (with 2+ reviewers), agree, agreement (0..1, NaN
        when no item has two reviewers)."""
        hist = self._votes_of_shared_items(fingerprint)
        votes = hist.groupby(["field", "item", "reviewer"], sort=False)["new_value"].last().reset_index()
        per_item = votes.groupby(["field", "item"]).agg(reviewers=("reviewer", "size"),
                                                       values=("new_value", "nunique"))
        multi = per_item[per_item["reviewers"] >= 2].reset_index()
        rows = []
        for field in FIELDS:
            part = multi[multi["field"] == field]
            agree = int((part["values"] == 1).sum())
            rows.append({"field": field, "items": len(part), "agree": agree,
                         "agreement": agree / len(part) if len(part) else float("nan")})
        return pd.DataFrame(rows)

    def fingerprints(self) -> list[str]:
        """Datasets that have decisions in this store."""
        with self._connection() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT fingerprint FROM decisions ORDER BY fingerprint")]


def bins_from_text(text: str) -> AgeBins:
    """A row's `bins` text ('lo,hi', '' for non-age rows) -> AgeBins (default when empty)."""
    if not text:
        return DEFAULT_BINS
    lo, hi = (int(x) for x in str(text).split(","))
    return DEFAULT_BINS if (lo, hi) == DEFAULT_BINS.edges else AgeBins(lo, hi, "custom")

