"""The sidebar every page shares (dataset, run, model card) and the demo's first-start build."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import streamlit as st

from audit import workspace
from pages import app_cache
from pages.app_cache import DATA_KEY, RUN_KEY


# ----------------------------------------------------------------------------- progress

def progress_callback(bar, label: str):
    """A callback for audit's `progress=` arguments that feeds an `st.progress` bar.

    Accepts `(done, total)`, a fraction in [0, 1], or keyword `done=`/`total=`, since
    library functions report in whichever is natural to them.
    """
    def update(*args, **kwargs):
        done = kwargs.get("done", args[0] if args else None)
        total = kwargs.get("total", args[1] if len(args) > 1 else None)
        try:
            frac = float(done) / float(total) if total else float(done)
        except (TypeError, ValueError):
            return
        frac = min(max(frac, 0.0), 1.0)
        text = f"{label} {int(done)}/{int(total)}" if total else f"{label} {frac:.0%}"
        bar.progress(frac, text=text)
    return update


# ----------------------------------------------------------------------------- demo bootstrap

def ensure_demo() -> None:
    """With no dataset configured: build the demo dataset and its run on the first start."""
    if (st.session_state.get(DATA_KEY) or "").strip():
        return
    root = workspace.demo_data_dir()
    if not app_cache.demo_is_built(root):
        _build_demo_dataset(root)
    run_dir = app_cache.demo_run_dir()
    if not (run_dir / "predictions.parquet").is_file() and _demo_weights().is_file():
        _predict_demo_run(root, run_dir)


def _demo_weights() -> Path:
    return workspace.DEMO_WEIGHTS / "model.pt"


def _build_demo_dataset(root: Path) -> None:
    from audit.demo_data import make_demo

    st.info("First start: drawing the built-in demo dataset (procedural faces). This takes a minute, once.")
    bar = st.progress(0.0, text="Drawing demo faces…")
    # Build beside the target and rename when complete, so a crash or a second session never
    # leaves a half-written demo that looks finished.
    tmp = root.parent / f".{root.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        # The size and seed `python -m audit demo` uses, so the committed demo model's out-of-fold
        # predictions (made on exactly this data) apply to the train rows.
        from audit.training import DEMO_EVAL_IMAGES, DEMO_PEOPLE, DEMO_SEED
        make_demo(tmp, people=DEMO_PEOPLE, eval_images=DEMO_EVAL_IMAGES, seed=DEMO_SEED,
                  progress=progress_callback(bar, "Drawing demo faces"))
        if root.exists() and not app_cache.demo_is_built(root):
            shutil.rmtree(root, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:
            pass  # another session finished first; its copy is as good as ours
    except Exception as err:
        st.error(f"Could not build the demo dataset: {app_cache.one_line(err)}. "
                 f"Try `python -m audit make-demo {root}` in a terminal to see the details.")
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bar.progress(1.0, text="Demo dataset ready")


def _predict_demo_run(root: Path, run_dir: Path) -> None:
    from audit.prediction import predict_run

    st.info("First start: predicting the demo images with the committed demo model (weights/demo).")
    bar = st.progress(0.0, text="Predicting the demo run…")
    try:
        index = app_cache.cached_index(str(root.resolve()), app_cache.dataset_stamp(root.resolve()))
        predict_run(index, _demo_weights(), run_dir, progress=progress_callback(bar, "Predicting demo images"))
    except Exception as err:
        st.error(f"Could not predict the demo run: {app_cache.one_line(err)}. "
                 f"Try `python -m audit demo` in a terminal to see the details.")
        return
    bar.progress(1.0, text="Demo run ready")
    st.session_state[RUN_KEY] = str(run_dir)
    app_cache.cached_run_list.clear()


# ----------------------------------------------------------------------------- the sidebar

def _set_data_dir() -> None:
    st.session_state[DATA_KEY] = st.session_state.get("sidebar_data_dir", "").strip()
    st.session_state[RUN_KEY] = ""  # a run belongs to one dataset; choose again
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = None


def _set_run() -> None:
    st.session_state[RUN_KEY] = st.session_state.get("sidebar_run") or ""
    st.session_state[app_cache.SAMPLES_SELECTION_KEY] = None


def draw_sidebar() -> None:
    ctx = app_cache.load_context()
    with st.sidebar:
        st.subheader("Dataset")
        st.session_state.setdefault("sidebar_data_dir", st.session_state.get(DATA_KEY, ""))
        st.text_input("Data folder (empty = built-in demo)", key="sidebar_data_dir", on_change=_set_data_dir,
                      placeholder=str(workspace.demo_data_dir()),
                      help="The folder holding images/ (seed layout) or train/ + eval/ (competition layout), "
                           "or its parent.")
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
        _reviewer_box()


def _reviewer_box() -> None:
    """Who is reviewing: remembered in the session, carried by every decision (pages/review_widgets.py)."""
    from pages import review_widgets

    st.subheader("Reviewer")
    review_widgets.draw_reviewer_box()


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
