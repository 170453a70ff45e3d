"""The sidebar every page shares (dataset, run, model card) and the demo's first-start build."""
from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from audit import demo_setup, jobs, labels, workspace
from ui import app_cache
from ui.app_cache import DATA_KEY, RUN_KEY


# ----------------------------------------------------------------------------- background jobs

def follow_job(folder: Path, argv: list[str], *, title: str, terminal_command: str) -> bool:
    """Start a background job (audit/jobs.py) unless it is running, and show its progress with
    the elapsed time until it ends. Returns True when it finished well.

    A job interrupted earlier (server stopped, killed) starts over by itself; one that failed says
    why in one line and waits for "Try again". The page says so when the job stops progressing.
    """
    status = jobs.job_status(folder)
    retry_key = f"job_retry_{folder.name}"
    if status.state != "failed" or st.session_state.pop(retry_key, False):
        if not status.active:
            status = jobs.start_job(folder, argv)
        box = st.empty()
        while status.active:
            with box.container():
                st.info(title)
                done = f" {status.done:,}/{status.total:,}" if status.total else ""
                st.progress(status.fraction, text=f"{status.message or 'Starting'}{done} · {status.elapsed():.0f} s")
                if status.stalled():
                    st.warning(f"No progress for {status.seconds_since_progress():.0f} s. It may be stuck: stop "
                               f"the app, run `{terminal_command}` in a terminal to see what it is doing, then "
                               f"start the app again.")
            time.sleep(JOB_POLL_SECONDS)
            status = jobs.job_status(folder)
        box.empty()
        if status.state == "done":
            return True
    reason = status.error or jobs.log_tail(folder) or status.state
    st.error(f"{title.split(':')[0]} did not finish: {reason}. Run `{terminal_command}` in a terminal to see "
             f"the details.")
    if st.button("Try again", key=f"job_try_again_{folder.name}"):
        st.session_state[retry_key] = True
        st.rerun()
    return False


JOB_POLL_SECONDS = 0.5


def ensure_demo() -> None:
    """With no dataset configured: prepare the demo dataset and its run, once, in the background."""
    if (st.session_state.get(DATA_KEY) or "").strip() or demo_setup.demo_is_ready():
        return
    if follow_job(demo_setup.demo_job_dir(), demo_setup.prepare_demo_argv(),
                  title="First start: drawing the built-in demo dataset and predicting it with the committed "
                        "demo model. This takes about a minute, once.",
                  terminal_command="python -m audit prepare-demo"):
        app_cache.cached_run_list.clear()
        st.rerun()  # draw the page from the start, without the progress boxes


# ----------------------------------------------------------------------------- the sidebar

def _open_data_dir() -> None:
    """The "Open" button of the data-folder form: the only way a typed folder takes effect, so a
    widget that comes back empty after an early navigation can never switch the dataset."""
    value = (st.session_state.get("sidebar_data_dir") or "").strip()
    problem = app_cache.data_dir_problem(value)
    if problem:
        st.session_state["sidebar_data_problem"] = problem
        return
    st.session_state.pop("sidebar_data_problem", None)
    if value == st.session_state.get(DATA_KEY, ""):
        return
    st.session_state[DATA_KEY] = value
    st.session_state[RUN_KEY] = ""  # a run belongs to one dataset; choose again
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = None


def _set_run() -> None:
    st.session_state[RUN_KEY] = st.session_state.get("sidebar_run") or ""
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = None


def draw_sidebar() -> None:
    ctx = app_cache.load_context()
    with st.sidebar:
        st.subheader("Dataset")
        # Re-filled from the session's dataset whenever Streamlit dropped the widget's state (a
        # page link clicked before the sidebar was drawn): the box never comes back empty.
        st.session_state.setdefault("sidebar_data_dir", st.session_state.get(DATA_KEY, ""))
        with st.form("sidebar_data_form", border=False):
            st.text_input("Data folder (empty = built-in demo)", key="sidebar_data_dir",
                          placeholder=str(workspace.demo_data_dir()),
                          help="The folder holding images/ (seed layout) or train/ + eval/ (competition layout), "
                               "or its parent. Press Enter or Open to use it.")
            st.form_submit_button("Open", on_click=_open_data_dir)
        if st.session_state.get("sidebar_data_problem"):
            st.error(st.session_state["sidebar_data_problem"])
        if ctx.index is not None:
            label = "Demo dataset" if ctx.is_demo else ctx.index.root
            st.caption(f"{label} · {ctx.index.layout} layout · {len(ctx.index.images):,} images · "
                       f"{ctx.index.people:,} people")
        elif ctx.data_problem:
            st.error(ctx.data_problem)
        if st.button("Re-index", key="sidebar_reindex", help="Read the folder again (after editing files)."):
            app_cache.cached_index.clear()
            st.rerun()

        st.subheader("Run")
        runs = app_cache.runs_listing()
        _default_run(ctx, runs)
        ctx = app_cache.load_context()
        paths = [r["path"] for r in runs]
        current = st.session_state.get(RUN_KEY, "")
        if current and current not in paths:
            paths.append(current)  # a run folder given by path, outside the workspace
        by_path = {r["path"]: r for r in runs}
        options = [""] + paths
        st.session_state["sidebar_run"] = current if current in options else ""

        def fmt(p: str) -> str:
            if not p:
                return "— none —"
            run = by_path.get(p)
            name = run["name"] if run else Path(p).name
            fp = (run or {}).get("meta", {}).get("data_fingerprint")
            if ctx.index is not None and fp and fp != ctx.fingerprint:
                return f"{name} (other dataset)"
            return name

        st.selectbox("Run", options, format_func=fmt, key="sidebar_run", on_change=_set_run,
                     help="A run is one checkpoint's predictions over this dataset (workspace/runs/).")
        if ctx.run_problem:
            st.error(ctx.run_problem)
        elif ctx.has_run:
            _model_card(ctx)
        elif not runs:
            st.caption("No runs yet. Predict one with `python -m audit predict DATA --checkpoint weights/demo/model.pt`.")
        _age_bins_box(ctx)
        _reviewer_box()
        _model_server_box(ctx)


BIN_CHOICES = {"default": "<25 / 25–39 / ≥40 (default)", "competition": "<30 / 30–59 / ≥60 (the original competition)",
               "custom": "Custom edges…"}


def _set_bins() -> None:
    choice = st.session_state.get("sidebar_bins_choice", "default")
    spec = choice if choice != "custom" else (st.session_state.get("sidebar_bins_custom") or "").strip()
    try:
        labels.parse_bins(spec)
    except ValueError as err:
        st.session_state["sidebar_bins_problem"] = app_cache.one_line(err)
        return
    st.session_state.pop("sidebar_bins_problem", None)
    st.session_state[app_cache.BINS_KEY] = spec


def _age_bins_box(ctx: app_cache.AppContext) -> None:
    """A chosen run's bins are the run's; with no run the session chooses (or `-- --bins`)."""
    if ctx.predictions is not None:
        st.caption(f"Age bins: {' / '.join(ctx.bins.labels)} (the run's)")
        return
    spec = st.session_state.get(app_cache.BINS_KEY, "default")
    st.session_state.setdefault("sidebar_bins_choice", spec if spec in BIN_CHOICES else "custom")
    st.session_state.setdefault("sidebar_bins_custom", "" if spec in BIN_CHOICES else spec)
    st.selectbox("Age bins", list(BIN_CHOICES), format_func=BIN_CHOICES.get, key="sidebar_bins_choice",
                 on_change=_set_bins, help="Used while no run is chosen; a run always brings its own bins.")
    if st.session_state.get("sidebar_bins_choice") == "custom":
        st.text_input("Edges LO,HI (e.g. 30,60)", key="sidebar_bins_custom", on_change=_set_bins)
    if st.session_state.get("sidebar_bins_problem"):
        st.error(st.session_state["sidebar_bins_problem"])


def _reviewer_box() -> None:
    """Who is reviewing: remembered in the session, carried by every decision (ui/review_widgets.py)."""
    from ui import review_widgets

    st.subheader("Reviewer")
    review_widgets.draw_reviewer_box()


def _set_model_url() -> None:
    st.session_state[app_cache.MODEL_URL_KEY] = st.session_state.get("sidebar_model_url", "").strip()


def _model_server_box(ctx: app_cache.AppContext) -> None:
    """Which model answers single-image work (the sample detail's Grad-CAM, Try the model): this
    process, or a model server (`python -m audit serve`; MASK_AUDIT_MODEL_URL sets it at start)."""
    from ui.review_widgets import plain

    st.subheader("Model")
    url = app_cache.model_url()
    st.session_state.setdefault("sidebar_model_url", url)
    st.text_input("Model server URL (empty = in this process)", key="sidebar_model_url", on_change=_set_model_url,
                  placeholder="http://gpu-box:8700",
                  help="A server started with `python -m audit serve --weights weights/NAME`: Grad-CAM and "
                       "uploads then run there. Empty: the model is loaded in this process.")
    if not url:
        checkpoint = app_cache.run_checkpoint(ctx.meta) if ctx.has_run else None
        where = plain(Path(checkpoint).parent.name) if checkpoint else "the run's checkpoint (or weights/demo)"
        st.caption(f"Answering: {where}, loaded in this process")
        return
    info = app_cache.model_server_card(url)
    if not info["ok"]:
        st.error(f"Model server {plain(url)}: {plain(info['error'])}")
        return
    card, sha = info.get("card") or {}, str(info.get("checkpoint_sha256", ""))
    st.caption(f"Answering: {plain(card.get('arch', '?'))} ({plain(Path(str(info.get('checkpoint', '?'))).parent.name)}, "
               f"sha {sha[:12]}) on {plain(info.get('device', '?'))} at {plain(url)}")
    run_sha = str(ctx.meta.get("checkpoint_sha256", "")) if ctx.has_run else ""
    if run_sha and sha and run_sha != sha:
        st.warning("The server's model is not this run's checkpoint: its Grad-CAM explains another model.")


def _default_run(ctx: app_cache.AppContext, runs: list[dict]) -> None:
    """With no run chosen, pick the newest run made on this dataset."""
    if st.session_state.get(RUN_KEY) or ctx.index is None:
        return
    for run in runs:
        if run["meta"].get("data_fingerprint") == ctx.fingerprint:
            st.session_state[RUN_KEY] = run["path"]
            return


def _model_card(ctx: app_cache.AppContext) -> None:
    meta = ctx.meta
    with st.expander("Model card", expanded=False):
        checkpoint = app_cache.run_checkpoint(meta)
        card = None
        if checkpoint is not None:
            try:
                card = app_cache.cached_model_card(str(checkpoint), app_cache._stat_stamp([checkpoint]))
            except Exception as err:
                st.caption(f"Model card unreadable: {app_cache.one_line(err)}")
        if card:
            st.markdown(f"**{card.get('arch', '?')}** · input {card.get('input_size')} · "
                        f"pretrained: {card.get('pretrained', '?')} · {card.get('folds', 0)} folds, "
                        f"{card.get('epochs', 0)} epochs")
            metrics = card.get("metrics") or {}
            for split, m in metrics.items():
                if isinstance(m, dict) and "macro_f1" in m:
                    how = f" ({metrics['eval_source']})" if split == "eval" and metrics.get("eval_source") else ""
                    st.caption(f"{split}{how}: macro F1 {m['macro_f1']:.3f}")
            st.json(card, expanded=False)
        st.caption(f"Checkpoint: {meta.get('checkpoint', 'unknown')}")
        if meta.get("created"):
            st.caption(f"Created: {meta['created']}")
        st.caption(f"Source: {meta.get('source', 'predict')} · {len(ctx.predictions):,} predictions")
