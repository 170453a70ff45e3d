"""Deciding a label anywhere: the one decision widget every page uses (Label noise, the sample
detail, Samples, Embeddings), the bulk decision, undo, and plain-language evidence.

Every decision goes through `save_decisions` into the workspace's ReviewStore, carries the
sidebar's reviewer name, and is pushed on this session's undo stack. Keys (`KEYS`) are given to
ONE panel per page (`shortcuts=True`): Streamlit's button shortcuts are page-wide.
User text (notes, reviewer names) is drawn with `st.text` or escaped (`plain`), never as Markdown.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from audit import labels
from ui import app_cache

# action -> key (Streamlit button shortcuts; "C" and "R" are reserved by Streamlit).
KEYS = {"accept": "A", "keep": "K", "skip": "S", "note": "N", "undo": "U", "next": "Right",
        "previous": "Left", "save_age": "Enter", "keep_age": "B"}
VALUE_KEYS = ("1", "2", "3")  # set the field's value 1, 2, 3 (in the order of labels.field_value_names)
UNDO_STACK_KEY = "review_undo_stack"   # [(message, fingerprint, [row ids])], newest last
LAST_SAVED_KEY = "review_last_saved"   # message of the last save (shown with its Undo)
ERROR_KEY = "review_last_error"
TOAST_KEY = "review_toast"             # a message to toast once

# Detector names of the review queue -> what a reviewer reads.
DETECTOR_NAMES = {
    "cleanlab": "The model disagrees",
    "person_level": "The person's other photos",
    "mask_slots": "The person's mask photos",
    "neighbours": "Similar faces",
    "age_residual": "Predicted age",
    "second_opinion": "The other run disagrees",
    "ensemble": "Both runs together",
    "simifeat": "Similar faces to the other run",
    "age_likelihood": "The other run's age in years",
}
FIELD_NAMES = {f.name: f.title for f in labels.FIELD_INFO.values()}  # "mask" -> "Mask"


def detector_name(name: str) -> str:
    name = str(name).strip()
    return DETECTOR_NAMES.get(name, name.replace("_", " ").capitalize())


def detector_list(names: str) -> str:
    """'person_level, neighbours' -> "The person's other photos, similar faces"."""
    parts = [detector_name(n) for n in str(names or "").split(",") if n.strip()]
    return ", ".join([parts[0]] + [p[0].lower() + p[1:] for p in parts[1:]]) if parts else ""


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=])")


def plain(text) -> str:
    """`text` escaped so Markdown shows it as typed (no links, images, HTML, emoji codes)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text if text is not None else ""))


# ----------------------------------------------------------------------------- evidence in words

_NUMBERS = [
    re.compile(r"\s*\((?:mean )?p=[0-9.]+\)"),
    re.compile(r"\s*\(log-likelihood ratio [^)]*\)"),
    re.compile(r"\s*\(k=[^)]*\)"),
]
_SLOTS = re.compile(r"the person's photos fit ([+-]?[0-9.]+) nats better with this one "
                    r"(swapped with|, )\s*(\S+?)( reassigned)?$")
_BEST = re.compile(r"best reassignment of the person's photos ([+-]?[0-9.]+) nats")
_CLEANLAB = re.compile(r"p\(labelled ([^)]+)\)=([0-9.]+), p\(([^)]+)\)=([0-9.]+)")


def plain_sentence(detector: str, sentence: str) -> str:
    """One detector's sentence in plain words, numbers left out ("6 of 7 photos look female")."""
    text = str(sentence).strip()
    m = _CLEANLAB.search(text)
    if m:
        return f"the model says {m.group(3)} ({float(m.group(4)):.0%}), not {m.group(1)} ({float(m.group(2)):.0%})"
    for pattern in _NUMBERS:
        text = pattern.sub("", text)

    def slots(m: re.Match) -> str:
        gain, other = float(m.group(1)), m.group(3)
        if gain > 0:
            return f"swapping it with {other} fits the 5 + 1 + 1 mask photos better"
        return f"the photos fit the 5 + 1 + 1 mask slots best as labelled (a swap with {other} fits worse)"

    text = _SLOTS.sub(slots, text)
    text = _BEST.sub(lambda m: "a reassignment of the person's photos fits better" if float(m.group(1)) > 0
                     else "the photos fit best as labelled", text)
    return text


def evidence_lines(evidence: str) -> list[tuple[str, str, str]]:
    """The queue's evidence ('detector: sentence | ...') -> [(plain detector name, plain sentence,
    the sentence with its numbers)], strongest first."""
    out = []
    for part in str(evidence or "").split(" | "):
        if not part.strip():
            continue
        detector, _, sentence = part.partition(": ")
        if not sentence:
            detector, sentence = "", detector
        out.append((detector_name(detector) if detector else "", plain_sentence(detector, sentence), sentence))
    return out


def evidence_summary(target: "ReviewTarget", bins: labels.AgeBins) -> str:
    """One line: the suggestion and the strongest reason, e.g. "Probably Female: 6 of 7 photos
    look female; labelled male (and 1 more check)"."""
    lines = evidence_lines(target.evidence)
    if target.suggested is None or not lines:
        return "No detector has a suggestion for this item."
    head = f"Probably {value_name(target.field, target.suggested, bins)}: {lines[0][1]}"
    if len(lines) > 1:
        head += f" (and {len(lines) - 1} more check{'s' if len(lines) > 2 else ''})"
    return head


# ----------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class ReviewTarget:
    """One (item, field) a reviewer can decide: an image's mask, a train person's gender or age,
    or an eval image's gender or age (see audit.reviews)."""

    item: str                      # image path, or the person key for train gender/age
    field: str                     # mask | gender | age
    item_kind: str                 # image | person
    given: int                     # given code
    suggested: int | None = None   # the review queue's suggestion (None: not in the queue)
    split: str = ""
    person: str = ""
    path: str = ""                 # an image of the item (for a person: a representative photo)
    detectors: str = ""
    score: float | None = None
    evidence: str = ""
    given_age: int = -1            # years; -1 unknown

    @property
    def key(self) -> tuple[str, str]:
        return (self.item, self.field)


def target_from_queue(row, given_age: int = -1) -> ReviewTarget:
    """A review-queue row (suspects.parquet) -> ReviewTarget."""
    suggested = row["suggested"]
    return ReviewTarget(
        item=str(row["item"]), field=str(row["field"]), item_kind=str(row["item_kind"]),
        given=int(row["given"]), suggested=None if pd.isna(suggested) else int(suggested),
        split=str(row["split"]), person=str(row["person"]), path=str(row["path"]),
        detectors=str(row.get("detectors", "") or ""),
        score=None if pd.isna(row.get("score")) else float(row["score"]),
        evidence=str(row.get("evidence", "") or ""), given_age=given_age)


def targets_for_image(row, queue_lookup: dict | None) -> list[ReviewTarget]:
    """The three decidable (item, field)s of one image row of a run (or the index): its mask, and
    gender and age of its person (train) or of the image itself (eval). Queue rows supply the
    suggestion and evidence where the detectors scored the item."""
    out = []
    for field, column in ((f.name, f.label_column) for f in labels.FIELD_INFO.values()):
        person_item = field != "mask" and row["split"] == "train"
        item = str(row["person"]) if person_item else str(row["path"])
        q = (queue_lookup or {}).get((item, field))
        if q is not None:
            out.append(target_from_queue(q, given_age=int(row["age"])))
            continue
        out.append(ReviewTarget(item=item, field=field, item_kind="person" if person_item else "image",
                                given=int(row[column]), split=str(row["split"]), person=str(row["person"]),
                                path=str(row["path"]), given_age=int(row["age"])))
    return out


def value_name(field: str, code, bins: labels.AgeBins) -> str:
    try:
        return labels.field_value_names(field, bins)[int(code)]
    except (ValueError, IndexError, TypeError):
        return str(code)


def decided_lookup(latest: pd.DataFrame) -> dict:
    """(item, field) -> the latest decision row (a namedtuple of audit.reviews.COLUMNS)."""
    return {(r.item, r.field): r for r in latest.itertuples(index=False)}


def decided_text(done, bins: labels.AgeBins) -> str:
    """A decision as one plain line: "Female (set by ann, 2026-11-30 12:01 UTC)"; skips say so."""
    who = f" by {done.reviewer}" if done.reviewer else ""
    when = str(done.created)[:16].replace("T", " ") + " UTC"
    source = f", from {done.source}" if getattr(done, "source", "") else ""
    if done.decision == "skip":
        return f"skipped{who} ({when}{source}): still undecided"
    value = value_name(done.field, done.new_value, bins)
    if done.field == "age" and not pd.isna(done.new_age):
        value += f", age {int(done.new_age)}"
    elif done.field == "age" and getattr(done, "keep_age", False):
        value += ", given age kept"
    return f"{value} ({done.decision}{who}, {when}{source})"


def is_decided(done) -> bool:
    """A skip is not a decision (the item stays in the undecided queue)."""
    return done is not None and done.decision != "skip"


# ----------------------------------------------------------------------------- saving, undo

def reviewer() -> str:
    return str(st.session_state.get(app_cache.REVIEWER_KEY, "") or "").strip()


def open_store():
    """The workspace's ReviewStore, or None after an st.error line."""
    try:
        return app_cache.review_store(str(app_cache.reviews_path()))
    except Exception as err:
        st.error(f"Could not open the review store {app_cache.reviews_path()}: {app_cache.one_line(err)}")
        return None


def save_decisions(fingerprint: str, bins: labels.AgeBins, targets: list[ReviewTarget], decision: str, *,
                   new_value=None, new_age=None, keep_age: bool = False, note: str = "",
                   message: str | None = None) -> list[int]:
    """Record `decision` for every target in one transaction, push it on the undo stack and say
    so; an error becomes one line (ERROR_KEY). Returns the new row ids ([] on error)."""
    store = app_cache.review_store(str(app_cache.reviews_path()))
    rows = []
    for t in targets:
        accept_value = t.suggested if decision == "accept" else None
        rows.append(dict(item=t.item, field=t.field, decision=decision, given=t.given, suggested=t.suggested,
                         new_value=new_value if decision == "set" else accept_value, new_age=new_age,
                         keep_age=keep_age, bins=bins, note=note, split=t.split, person=t.person, path=t.path,
                         detectors=t.detectors, score=t.score))
    try:
        ids = store.record_many(fingerprint, rows, reviewer=reviewer())
    except Exception as err:
        st.session_state[ERROR_KEY] = f"Not saved: {app_cache.one_line(err)}"
        return []
    if message is None:
        t = targets[0]
        message = f"Saved: {decision} for {t.field} of {t.item}"
        if decision in ("set", "accept") and (decision == "set" or t.suggested is not None):
            value = new_value if decision == "set" else t.suggested
            message += f" → {value_name(t.field, value, bins)}"
            if new_age is not None:
                message += f", age {int(new_age)}"
    st.session_state.setdefault(UNDO_STACK_KEY, []).append((message, fingerprint, ids))
    st.session_state[LAST_SAVED_KEY] = message
    st.session_state[TOAST_KEY] = message
    return ids


def undo_last_save() -> None:
    """Undo this session's newest save (one decision or one bulk decision): button callback."""
    stack = st.session_state.get(UNDO_STACK_KEY) or []
    if not stack:
        st.session_state[ERROR_KEY] = "Nothing to undo in this session."
        return
    message, fingerprint, ids = stack.pop()
    store = app_cache.review_store(str(app_cache.reviews_path()))
    try:
        store.undo(fingerprint, ids, reviewer=reviewer())
    except Exception as err:
        st.session_state[ERROR_KEY] = f"Could not undo: {app_cache.one_line(err)}"
        return
    st.session_state[LAST_SAVED_KEY] = f"Undone: {message.removeprefix('Saved: ')}"
    st.session_state[TOAST_KEY] = st.session_state[LAST_SAVED_KEY]


def draw_save_messages(*, key: str, shortcuts: bool = False) -> None:
    """The last save ("Saved: ... → Female") with its Undo button, and any error, as one line each."""
    if msg := st.session_state.pop(ERROR_KEY, None):
        st.error(msg)
    msg = st.session_state.get(LAST_SAVED_KEY)
    stack = st.session_state.get(UNDO_STACK_KEY) or []
    if not msg and not stack:
        return  # nothing saved in this session yet: no empty Undo
    # Undo on the left, beside the message: the toast (top right) never covers it.
    c1, c2 = st.columns([1, 6], vertical_alignment="center")
    c1.button("Undo", key=f"{key}_undo", on_click=undo_last_save, disabled=not stack,
              shortcut=KEYS["undo"] if shortcuts else None, icon=":material/undo:", width="stretch",
              help="Undo this session's last decision (a bulk decision is undone as a whole).")
    if msg:
        c2.text(msg)
    if toast := st.session_state.pop(TOAST_KEY, None):
        st.toast(plain(toast), icon=":material/check:", duration="short")


# ----------------------------------------------------------------------------- the panel

def _pending_key(key: str) -> str:
    return f"{key}_pending_age"


STALE_PRESS = "That key press reached the item shown before (the page was still updating): nothing saved."


def _on_decide(key: str, fingerprint: str, bins: labels.AgeBins, target: ReviewTarget, note_key: str,
               current, decision: str, value=None, on_decided=None) -> None:
    """Button callback: save at once, or for an age-bin change first ask for the age in years."""
    # A key pressed while the page still draws the next item reaches the widgets of the item before
    # (Streamlit keeps the last finished run's callbacks): never record it on that item.
    if current is not None and not current(target):
        st.session_state[ERROR_KEY] = STALE_PRESS
        return
    note = str(st.session_state.get(note_key, "") or "")
    new_value = value if decision == "set" else (target.suggested if decision == "accept" else None)
    changes_age = (target.field == "age" and decision in ("accept", "set") and new_value is not None
                   and int(new_value) != target.given and target.given_age >= 0)
    if changes_age:
        st.session_state[_pending_key(key)] = (target.key, decision, int(new_value))
        from audit.export import age_bin_middle
        st.session_state[f"{key}_age_years"] = age_bin_middle(int(new_value), bins)
        return
    ids = save_decisions(fingerprint, bins, [target], decision, new_value=value, note=note)
    if ids and on_decided is not None:
        on_decided(target, decision)


def _on_age(key: str, fingerprint: str, bins: labels.AgeBins, target: ReviewTarget, note_key: str,
            current, keep_age: bool, on_decided=None) -> None:
    if current is not None and not current(target):
        st.session_state[ERROR_KEY] = STALE_PRESS
        return
    pending = st.session_state.pop(_pending_key(key), None)
    if not pending or pending[0] != target.key:
        return
    _key, decision, code = pending
    note = str(st.session_state.get(note_key, "") or "")
    if keep_age:
        ids = save_decisions(fingerprint, bins, [target], decision, new_value=code, keep_age=True, note=note)
    else:
        years = int(st.session_state.get(f"{key}_age_years"))
        # An age in years is a 'set' (the store derives the bin from it).
        ids = save_decisions(fingerprint, bins, [target], "set", new_age=years, note=note)
    if ids and on_decided is not None:
        on_decided(target, decision)


def _cancel_age(key: str) -> None:
    st.session_state.pop(_pending_key(key), None)


def _focus_note_script(note_key: str) -> str:
    """Constant script (no user text): N focuses the note box; Enter in it saves and leaves it, so
    the decision keys work again. Streamlit's own shortcuts ignore keys typed into a text box."""
    return f"""<script>
(function() {{
  const doc = window.parent ? window.parent.document : document;
  const w = window.parent || window;
  w.__maskAuditNoteKey = "{note_key}";
  if (w.__maskAuditNoteHooked) return;
  w.__maskAuditNoteHooked = true;
  doc.addEventListener("keydown", function(e) {{
    const box = doc.querySelector(".st-key-" + w.__maskAuditNoteKey + " input");
    if (!box) return;
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes((e.target.tagName || "").toUpperCase());
    if (!typing && (e.key === "n" || e.key === "N") && !e.ctrlKey && !e.metaKey && !e.altKey) {{
      e.preventDefault(); e.stopPropagation(); box.focus(); box.select();
    }} else if (e.target === box && (e.key === "Enter" || e.key === "Escape")) {{
      setTimeout(function() {{ box.blur(); }}, 0);
    }}
  }}, true);
}})();
</script>"""


def decision_panel(ctx: app_cache.AppContext, target: ReviewTarget, done, *, key: str, suffix: str = "",
                   shortcuts: bool = False, on_decided=None, show_history: bool = True, current=None) -> None:
    """Accept / keep / set a value / skip, with a note, for one (item, field), saved at once.

    `done`: the item's latest decision row or None. `key`: a prefix unique on the page; the widget
    keys are `{key}_accept{suffix}`, `{key}_keep{suffix}`, `{key}_set_{code}{suffix}`,
    `{key}_skip{suffix}`, `{key}_note{suffix}`.
    `shortcuts`: give this panel the keys (one panel per page). `on_decided(target, decision)`
    runs after a save (e.g. to move to the next item). Age changes ask for the age in years.
    `current(target) -> bool`: whether the target is still the page's current item when a button
    fires (keys pressed faster than the page redraws must not land on the item before).
    """
    bins, fp = ctx.bins, ctx.fingerprint
    names = labels.field_value_names(target.field, bins)
    note_key = f"{key}_note{suffix}"
    # Widgets belong to a position on the page; refill the note when another item moves there.
    if st.session_state.get(f"{key}_item") != target.key:
        st.session_state[f"{key}_item"] = target.key
        st.session_state[note_key] = done.note if done is not None else ""
        st.session_state.pop(_pending_key(key), None)
    if done is not None:
        st.text(("Decided: " if is_decided(done) else "") + decided_text(done, bins))
        if done.note:
            st.text(f"Note: {done.note}")
    args = (key, fp, bins, target, note_key, current)
    # No tooltips on these buttons: with one, Streamlit 1.67 draws a button twice after a rerun.
    st.caption("Accept takes the checks' suggestion, Keep says the given label is right, Set picks a value, "
               "Skip leaves the item undecided for later.")
    cols = st.columns(len(names) + 3)
    has_suggestion = target.suggested is not None and target.suggested != target.given
    cols[0].button(f"Accept: {names[target.suggested]}" if has_suggestion else "Accept",
                   key=f"{key}_accept{suffix}", type="primary", disabled=not has_suggestion, width="stretch", wrap=True,
                   on_click=_on_decide, args=(*args, "accept", None, on_decided),
                   shortcut=KEYS["accept"] if shortcuts else None)
    cols[1].button(f"Keep: {names[target.given]}", key=f"{key}_keep{suffix}", width="stretch", wrap=True,
                   on_click=_on_decide, args=(*args, "keep", None, on_decided),
                   shortcut=KEYS["keep"] if shortcuts else None)
    for code, name in enumerate(names):
        cols[2 + code].button(f"Set {name}", key=f"{key}_set_{code}{suffix}", width="stretch", wrap=True,
                              on_click=_on_decide, args=(*args, "set", code, on_decided),
                              shortcut=VALUE_KEYS[code] if shortcuts else None)
    cols[-1].button("Skip", key=f"{key}_skip{suffix}", width="stretch", wrap=True, on_click=_on_decide,
                    args=(*args, "skip", None, on_decided), shortcut=KEYS["skip"] if shortcuts else None)
    st.text_input("Note", key=note_key, placeholder="note, saved with the decision"
                  + (" (N to type, Enter to finish)" if shortcuts else ""), label_visibility="collapsed")
    if shortcuts:
        st.html(_focus_note_script(note_key), unsafe_allow_javascript=True)

    pending = st.session_state.get(_pending_key(key))
    if pending and pending[0] == target.key:
        _draw_age_prompt(key, target, pending[2], bins, args, shortcuts, on_decided)
    # A toggle, not an expander: the history is read and sent only when asked for.
    if show_history and st.toggle("History of this item", key=f"{key}_history_on{suffix}"):
        with st.container(border=True):
            hist = app_cache.review_store(str(app_cache.reviews_path())).history(fp, target.item, target.field)
            if hist.empty:
                st.caption("No decisions yet.")
            else:
                shown = hist.assign(value=[value_name(target.field, v, bins) if not pd.isna(v) else ""
                                           for v in hist["new_value"]])
                st.dataframe(shown[["created", "reviewer", "decision", "value", "new_age", "note", "source"]],
                             hide_index=True, key=f"{key}_history")


def _draw_age_prompt(key, target, code, bins, args, shortcuts, on_decided) -> None:
    """Age bin changes: the age in years the corrected manifest gets, or keep the given age."""
    from audit.export import age_bin_range

    lo, hi = age_bin_range(code, bins)
    with st.container(border=True, key=f"{key}_age_prompt"):
        st.markdown(f"**Age in years for {plain(bins.labels[code])}** (labelled {target.given_age}): the corrected "
                    "train.csv and folder name get this age.")
        a1, a2, a3, a4 = st.columns([1, 2, 3, 1], vertical_alignment="bottom")
        a1.number_input("Age in years", min_value=lo, max_value=hi, step=1, key=f"{key}_age_years")
        a2.button("Save this age", key=f"{key}_age_save", type="primary", on_click=_on_age,
                  args=(*args, False, on_decided), shortcut=KEYS["save_age"] if shortcuts else None)
        a3.button(f"Keep age {target.given_age}, mark the bin only", key=f"{key}_age_keep", on_click=_on_age,
                  args=(*args, True, on_decided), shortcut=KEYS["keep_age"] if shortcuts else None,
                  help="The corrected manifests keep the given age and folder name; only the bin changes.")
        a4.button("Cancel", key=f"{key}_age_cancel", on_click=_cancel_age, args=(key,),
                  shortcut="Esc" if shortcuts else None)


def keys_help(*, navigation: bool = True) -> str:
    """The keys, as one caption line."""
    parts = ["A accept", "K keep", "1/2/3 set value", "S skip", "N note", "U undo"]
    if navigation:
        parts += ["→ next", "← previous"]
    return "Keys: " + " · ".join(parts) + " (age changes: Enter saves the age, B keeps the given age)."


# ----------------------------------------------------------------------------- bulk

def bulk_panel(ctx: app_cache.AppContext, targets: list[ReviewTarget], *, key: str, what: str) -> None:
    """One decision for many items at once, behind a confirmation that states the count.

    `targets`: the selection's (item, field)s (one field); `what`: how the selection is named
    ("gender suspects shown"). One history row per item, all in one transaction; one Undo undoes it.
    """
    if not targets:
        st.caption("Nothing selected.")
        return
    field = targets[0].field
    bins = ctx.bins
    names = labels.field_value_names(field, bins)
    with_suggestion = [t for t in targets if t.suggested is not None]
    choices = (["accept"] if with_suggestion else []) + ["keep"] + [f"set_{c}" for c in range(len(names))] + ["skip"]
    label = {"accept": "Accept each item's suggestion", "keep": "Keep each given label", "skip": "Skip (look later)",
             **{f"set_{c}": f"Set {FIELD_NAMES[field].lower()} to {n}" for c, n in enumerate(names)}}
    b1, b2 = st.columns([2, 3], vertical_alignment="bottom")
    choice = b1.selectbox("Decision", choices, format_func=label.get, key=f"{key}_choice")
    applies = with_suggestion if choice == "accept" else targets
    count = len(applies)
    sure = b2.checkbox(f"Yes, apply \"{label[choice]}\" to {count:,} {FIELD_NAMES[field].lower()} items ({what})",
                       key=f"{key}_confirm")
    if choice == "accept" and len(with_suggestion) < len(targets):
        st.caption(f"{len(targets) - len(with_suggestion):,} items have no suggestion and are left out.")
    if field == "age" and choice.startswith("set_"):
        st.caption("Bulk age decisions mark the bin only; each person's age in years is kept.")
    st.button(f"Apply to {count:,} items", key=f"{key}_apply", type="primary", disabled=not sure or not count,
              on_click=_apply_bulk, args=(ctx.fingerprint, bins, applies, choice, label[choice], key, what))


def _apply_bulk(fingerprint: str, bins: labels.AgeBins, targets: list[ReviewTarget], choice: str, label: str,
                key: str, what: str) -> None:
    """Button callback of `bulk_panel`: one transaction, one undo entry, confirmation reset."""
    decision = choice.split("_")[0]
    value = int(choice.split("_")[1]) if choice.startswith("set_") else None
    # Bulk age changes mark the bin and keep each known age in years (no age prompt per item).
    keep_age = targets[0].field == "age" and decision in ("set", "accept")
    with_age = [t for t in targets if keep_age and t.given_age >= 0]
    without = [t for t in targets if not (keep_age and t.given_age >= 0)]
    message = f"Saved: {label} for {len(targets):,} items ({what})"
    ids = []
    for part, kept in ((with_age, True), (without, False)):
        if part:
            ids += save_decisions(fingerprint, bins, part, decision, new_value=value, keep_age=kept, message=message)
            if ids and len(ids) > len(part):  # one undo entry for the whole bulk decision
                stack = st.session_state[UNDO_STACK_KEY]
                stack.pop()
                stack[-1] = (message, fingerprint, ids)
    st.session_state[f"{key}_confirm"] = False


# ----------------------------------------------------------------------------- the reviewer

REVIEWER_BOX_KEY = "sidebar_reviewer"


def _set_reviewer() -> None:
    st.session_state[app_cache.REVIEWER_KEY] = str(st.session_state.get(REVIEWER_BOX_KEY, "") or "").strip()


def draw_reviewer_box() -> None:
    """The sidebar's reviewer name (remembered in the session; every decision carries it)."""
    st.session_state.setdefault(REVIEWER_BOX_KEY, st.session_state.get(app_cache.REVIEWER_KEY, ""))
    st.text_input("Reviewer", key=REVIEWER_BOX_KEY, on_change=_set_reviewer, max_chars=80,
                  placeholder="your name (saved with each decision)",
                  help="Every decision you make in this browser tab carries this name; Export shows "
                       "where reviewers disagree.")


# ----------------------------------------------------------------------------- images of a run

def queue_for(ctx: app_cache.AppContext, rows: pd.DataFrame) -> dict:
    """(item, field) -> review-queue row (a dict) for the images in `rows` and their people."""
    queue = app_cache.cached_suspects(str(ctx.run_path), app_cache.run_stamp(ctx.run_path))
    if queue is None or queue.empty or rows.empty:
        return {}
    wanted = set(rows["path"].astype(str)) | set(rows.loc[rows["split"] == "train", "person"].astype(str))
    part = queue[queue["item"].isin(wanted)]
    return {(r["item"], r["field"]): r for r in part.to_dict("records")}


def image_targets(ctx: app_cache.AppContext, rows: pd.DataFrame, field: str | None = None) -> list[ReviewTarget]:
    """The decidable (item, field)s of these image rows, one per item (a train person's gender or
    age once, however many of their photos are in `rows`); only `field` when given."""
    lookup = queue_for(ctx, rows)
    out, seen = [], set()
    for row in rows.to_dict("records"):
        for t in targets_for_image(row, lookup):
            if (field is None or t.field == field) and t.key not in seen:
                seen.add(t.key)
                out.append(t)
    return out


def decided_on_image(row, decided: dict, bins: labels.AgeBins) -> list[str]:
    """Plain lines for the decisions that concern one image row: "gender: Female (set by ann, ...)"."""
    out = []
    for field in labels.FIELDS:
        item = str(row["person"]) if field != "mask" and row["split"] == "train" else str(row["path"])
        done = decided.get((item, field))
        if is_decided(done):
            out.append(f"{field}: {decided_text(done, bins)}")
    return out


def bulk_for_images(ctx: app_cache.AppContext, rows: pd.DataFrame, *, key: str, what: str) -> None:
    """The bulk decision for a set of images (Samples' filter, an Embeddings selection)."""
    field = st.radio("Field", list(FIELD_NAMES), format_func=FIELD_NAMES.get, horizontal=True,
                     key=f"{key}_field", help="Gender and age of train images are decided per person.")
    targets = image_targets(ctx, rows, field)
    st.caption(f"{len(rows):,} images → {len(targets):,} {field} items"
               + (" (train people count once)" if field != "mask" else ""))
    bulk_panel(ctx, targets, key=key, what=what)
