"""Every `st.cache_*` wrapper of the app, and the context (dataset + run) that pages share.

Pages call `page_context()` to get the configured dataset and run, already loaded and checked.
Cached loaders are keyed on a path plus a cheap "stamp" (file sizes and mtimes), so a changed
file is re-read and an unchanged one costs nothing per rerun. `audit/` does the work; this
module only decides what to keep between reruns. Nothing here holds mutable module state.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from audit import demo_setup, labels, workspace
from audit.runs import EMBEDDINGS_NAME, META_NAME, PREDICTIONS_NAME, SUSPECTS_NAME

# Session keys shared by pages (set once in app.py with setdefault; pages read them with .get).
DATA_KEY = "data_dir"          # str: dataset folder, "" = the built-in demo
RUN_KEY = "run_dir"            # str: run folder, "" = none chosen
SAMPLES_SELECTION_KEY = "samples_incoming"  # dict handed to the Samples page by other pages
REVIEWER_KEY = "reviewer"
BINS_KEY = "age_bins"          # str: age bins while no run is chosen: "default", "competition" or "LO,HI"
ROUTER_KEY = "router_ran"      # True once app.py ran in this session


# ----------------------------------------------------------------------------- configuration

def option_from_argv(name: str, argv: list[str] | None = None) -> str | None:
    """`streamlit run app.py -- --data DIR --bins competition` puts the options after `--` in the
    script's sys.argv; the value of `--<name>`, or None."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def data_dir_from_argv(argv: list[str] | None = None) -> str | None:
    return option_from_argv("data", argv)


def initial_bins_spec() -> str:
    """--bins (default, competition or LO,HI), else "default": the age bins used while no run is
    chosen (a chosen run's own bins always win; see `load_context`)."""
    return option_from_argv("bins") or "default"


def initial_data_dir() -> str:
    """--data, else MASK_AUDIT_DATA, else "" (the demo)."""
    from_argv = data_dir_from_argv()
    if from_argv:
        return from_argv
    configured = workspace.configured_data_dir()
    return str(configured) if configured else ""


def init_session_defaults() -> None:
    """Shared session keys, set once per session (app.py calls this before drawing anything)."""
    st.session_state.setdefault(DATA_KEY, initial_data_dir())
    st.session_state.setdefault(RUN_KEY, "")
    st.session_state.setdefault(BINS_KEY, initial_bins_spec())
    st.session_state.setdefault(SAMPLES_SELECTION_KEY, None)
    st.session_state.setdefault(REVIEWER_KEY, os.environ.get("USER", ""))
    st.session_state[ROUTER_KEY] = True


def data_dir_problem(value: str) -> str | None:
    """Why a folder typed into the app may not be opened (one line), or None when it may.

    "" is the built-in demo; the folder the server was started with (--data, MASK_AUDIT_DATA) is
    always allowed; any other must lie inside MASK_AUDIT_DATA_ROOTS when that is set.
    """
    value = value.strip()
    if not value or value == initial_data_dir():
        return None
    if not workspace.data_root_allowed(value):
        return (f"{value} is outside the folders this server may open ({workspace.DATA_ROOTS_ENV}); "
                f"ask whoever runs the app to add it.")
    return None


# ----------------------------------------------------------------------------- stamps

def _stat_stamp(paths) -> tuple:
    """(name, size, mtime_ns) for each existing path: changes when any of them changes."""
    out = []
    for p in paths:
        try:
            s = os.stat(p)
        except OSError:
            continue
        out.append((str(p), s.st_size, s.st_mtime_ns))
    return tuple(out)


def dataset_stamp(root: Path) -> tuple:
    """Cheap fingerprint of a dataset folder: the mtimes of the layout folders and CSVs.

    Adding or removing a person or an eval file changes one of these; the sidebar's "Re-index"
    button covers edits deeper in the tree. The paths are every layout's `stamp_paths`
    (audit/layouts.py), so a folder that changes layout is seen too.
    """
    from audit.layouts import all_stamp_paths

    return _stat_stamp([root, *(root / sub for sub in all_stamp_paths())])


def run_stamp(run_path: Path) -> tuple:
    names = (PREDICTIONS_NAME, META_NAME, SUSPECTS_NAME, EMBEDDINGS_NAME)
    return _stat_stamp([run_path / n for n in names])


# ----------------------------------------------------------------------------- cached loaders
# The index, the run and its queue are st.cache_resource, not st.cache_data: cache_data unpickles
# a fresh copy on every rerun, which cost ~0.12 s per keyed decision at full scale (31,500 images,
# a 62,100-item queue; py-spy of Label noise). One shared object per file version instead: pages
# only read them (pandas' copy-on-write keeps a filtered or derived frame from writing back), and
# the run's meta is copied per session in load_context.

@st.cache_resource(show_spinner="Indexing the dataset…", max_entries=4)
def cached_index(root: str, stamp: tuple, bins: labels.AgeBins = labels.DEFAULT_BINS):
    """DatasetIndex of `root` (see ARCHITECTURE.md); `stamp` only keys the cache."""
    from audit.dataset_index import index_dataset
    return index_dataset(root, bins=bins)


@st.cache_resource(show_spinner="Loading the run…", max_entries=4)
def cached_run(run_path: str, stamp: tuple) -> tuple[pd.DataFrame, dict]:
    """(predictions, meta) of a run folder; `stamp` only keys the cache."""
    from audit.runs import Run
    run = Run.open(run_path)
    return run.predictions, dict(run.meta)


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_suspects(run_path: str, stamp: tuple) -> pd.DataFrame | None:
    """The run's review queue (suspects.parquet), rows 0..n-1 in rank order, or None."""
    path = Path(run_path) / SUSPECTS_NAME
    if not path.is_file():
        return None
    return pd.read_parquet(path).reset_index(drop=True)


@dataclass(frozen=True)
class QueueKeys:
    """What Label noise looks up on every rerun, built once per queue version (~40 ms a rerun
    at 62,100 rows otherwise): `keys` (N,) "item<sep>field" strings by queue position, the same as
    a set, and the detector names that flagged anything."""

    keys: np.ndarray
    key_set: frozenset
    detector_names: tuple[str, ...]


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_queue_keys(run_path: str, stamp: tuple, sep: str) -> QueueKeys:
    queue = cached_suspects(run_path, stamp)
    if queue is None:
        return QueueKeys(np.zeros(0, dtype=object), frozenset(), ())
    keys = (queue["item"].astype(str) + sep + queue["field"].astype(str)).to_numpy()
    names = sorted({d for ds in queue["detectors"].astype(str).unique() for d in ds.split(", ") if d})
    return QueueKeys(keys, frozenset(keys), tuple(names))


@st.cache_data(show_spinner=False, max_entries=4)
def cached_run_list(runs_root: str, stamp: tuple) -> list[dict]:
    """Runs found under `runs_root`: [{"path", "name", "meta"}], by name; `stamp` keys the cache."""
    from audit.runs import list_runs
    return [{"path": str(Path(runs_root) / name), "name": name, "meta": meta} for name, meta in list_runs(runs_root)]


def runs_listing() -> list[dict]:
    root = workspace.runs_dir()
    children = sorted(root.iterdir()) if root.is_dir() else []
    stamp = _stat_stamp([root] + [p / name for p in children for name in (META_NAME, PREDICTIONS_NAME)])
    return cached_run_list(str(root), stamp)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_model_card(checkpoint: str, stamp: tuple) -> dict | None:
    """The model card of a run's checkpoint as a dict, or None when the checkpoint is not here."""
    import dataclasses
    from audit.model import read_card, resolve_checkpoint
    path = Path(checkpoint)
    if not path.is_absolute():
        path = workspace.REPO_ROOT / path
    if not resolve_checkpoint(path).is_file():
        return None
    card = read_card(path)
    return dataclasses.asdict(card) if dataclasses.is_dataclass(card) else dict(card)


@st.cache_data(show_spinner="Reading the embedding layout…", max_entries=8)
def cached_layout(run_path: str, method: str, stamp: tuple):
    """(N, 2) float32 layout of a run from its cache file, or None; `stamp` keys the cache."""
    from audit import embedding_layout
    return embedding_layout.cached_layout(run_path, method)


@st.cache_data(show_spinner="Projecting the embeddings (PCA)…", max_entries=4)
def cached_pca(run_path: str, stamp: tuple):
    """(N, 2) float32 PCA layout of a run's embeddings (instant stand-in while UMAP computes)."""
    import numpy as np
    from audit import embedding_layout
    cached = embedding_layout.cached_layout(run_path, "pca")
    if cached is not None:
        return cached
    return embedding_layout.pca_layout(np.load(embedding_layout.embeddings_path(run_path)))


@st.cache_data(show_spinner=False, max_entries=4)
def cached_hover_text(run_path: str, stamp: tuple, bins: labels.AgeBins) -> list[str]:
    """One short hover line per image of a run: id, file, split, given class, predicted class and
    its confidence, e.g. "ffhq-16577 mask4 (train) | Wea F 25-39 | pred Inc M 25-39 0.09".

    Short, ASCII and free of "<", ">" on purpose: at 31,500 points the hover strings are most of
    the chart's payload, and plotly's JSON escapes every non-ASCII character and every "<", ">" to
    six bytes. The full-scale Embeddings page took 2.65 s to show with the earlier
    "·/→/≥/<br>" strings and 1.88 s with empty ones (BENCHMARKS.md, "App page speed").
    """
    preds, _meta = cached_run(run_path, stamp)
    names = [labels.short_class_name(c, bins, ascii_only=True) for c in range(labels.N_CLASSES)]
    files = {"incorrect_mask": "incorrect", "normal": "normal", "mask": "mask"}
    return [f"{pid} {files.get(mt, mt)} ({sp}) | {names[g]} | pred {names[q]} {c:.2f}"
            for pid, mt, sp, g, q, c in zip(preds["person_id"], preds["mask_type"], preds["split"],
                                            preds["class_id"], preds["pred_class"], preds["confidence"])]


@st.cache_resource(show_spinner="Loading the model for Grad-CAM…", max_entries=2)
def gradcam_explainer(checkpoint: str, checkpoint_sha256: str):
    """One GradCamExplainer per checkpoint, shared by every session (calls are serialised inside)."""
    from audit.gradcam import GradCamExplainer
    return GradCamExplainer.from_checkpoint(checkpoint)


def run_checkpoint(meta: dict) -> Path | None:
    """The run's checkpoint file (meta "checkpoint", relative paths from the repository), if present."""
    ckpt = meta.get("checkpoint")
    if not ckpt:
        return None
    path = Path(ckpt)
    if not path.is_absolute():
        path = workspace.REPO_ROOT / path
    from audit.model import resolve_checkpoint
    path = resolve_checkpoint(path)
    return path if path.is_file() else None


@st.cache_data(show_spinner="Computing Grad-CAM…", max_entries=64)
def gradcam_overlays(checkpoint: str, checkpoint_sha256: str, image_file: str, image_stamp: tuple,
                     head: str, given: int, predicted: int,
                     bins: labels.AgeBins = labels.DEFAULT_BINS) -> list[tuple[str, object]]:
    """[(caption, PIL overlay)] for the given and the predicted value of one head, Grad-CAM and EigenCAM."""
    from audit.thumbnails import open_data_image

    explainer = gradcam_explainer(checkpoint, checkpoint_sha256)
    # ImageUnavailable (one line, says to re-index) when the file was replaced after indexing
    img = open_data_image(Path(image_file).parent, Path(image_file).name)
    pair = explainer.explain_pair(img, head, int(given), int(predicted), methods=("gradcam", "eigencam"))
    return _captioned_overlays(pair, labels.field_value_names(head, bins))


def _captioned_overlays(pair, names: tuple[str, ...]) -> list[tuple[str, object]]:
    """[(caption, overlay)]: Grad-CAM then EigenCAM, each for the given and the predicted value."""
    return [(f"{title} · {which}: {names[res.class_index]} (p={res.probability:.2f})", res.overlay)
            for method, title in (("gradcam", "Grad-CAM"), ("eigencam", "EigenCAM"))
            for which, res in (("given", pair.for_given[method]), ("predicted", pair.for_predicted[method]))]


@st.cache_resource(show_spinner=False)
def review_store(path: str):
    """The workspace's ReviewStore (SQLite in WAL mode; safe to share between sessions)."""
    from audit.reviews import ReviewStore
    return ReviewStore(path)


def reviews_path() -> Path:
    return workspace.workspace_dir() / "reviews.sqlite"


def thumbnails_dir() -> Path:
    return workspace.workspace_dir() / "thumbnails"


# ----------------------------------------------------------------------------- the context

@dataclass
class AppContext:
    """The configured dataset and run, loaded; `problems` says what is missing and why."""

    data_root: Path | None = None
    is_demo: bool = False
    index: object | None = None          # audit.dataset_index.DatasetIndex
    run_path: Path | None = None
    predictions: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)
    run_matches_data: bool = True
    data_problem: str | None = None
    run_problem: str | None = None

    @property
    def bins(self) -> labels.AgeBins:
        return self.index.bins if self.index is not None else run_bins(self.meta)

    @property
    def fingerprint(self) -> str:
        return getattr(self.index, "fingerprint", "") if self.index is not None else ""

    @property
    def has_run(self) -> bool:
        return self.predictions is not None and self.run_matches_data


def resolve_data_root(value: str) -> tuple[Path | None, bool]:
    """Session value -> (folder, is_demo)."""
    if value.strip():
        return Path(value.strip()).expanduser(), False
    return workspace.demo_data_dir(), True


def session_bins() -> labels.AgeBins:
    """The age bins chosen for the session while no run is chosen (sidebar, or --bins)."""
    return labels.parse_bins(st.session_state.get(BINS_KEY) or "default")


def load_context() -> AppContext:
    """Read the session's run and dataset, load them through the caches, and check they agree.

    The run is read first because its age bins decide how the data is indexed: the bins come from
    the chosen run's meta, else from the session's choice, and an index made with other bins is
    another cache entry (never reused with the wrong age names, classes or export ages).
    """
    ctx = AppContext()
    run_value = (st.session_state.get(RUN_KEY) or "").strip()
    if run_value:
        run_path = Path(run_value).expanduser()
        ctx.run_path = run_path
        if not (run_path / PREDICTIONS_NAME).is_file():
            ctx.run_problem = f"Run folder {run_path} has no predictions.parquet: choose another run."
        else:
            try:
                ctx.predictions, meta = cached_run(str(run_path), run_stamp(run_path))
                ctx.meta = dict(meta)  # shared by every session (cache_resource): never edited in place
            except Exception as err:
                ctx.run_problem = f"Could not read run {run_path.name}: {one_line(err)}"

    root, ctx.is_demo = resolve_data_root(st.session_state.get(DATA_KEY, initial_data_dir()) or "")
    ctx.data_root = root
    allowed_problem = data_dir_problem(st.session_state.get(DATA_KEY, "") or "")
    try:
        bins = run_bins(ctx.meta) if ctx.predictions is not None else session_bins()
    except ValueError as err:
        bins, allowed_problem = labels.DEFAULT_BINS, allowed_problem or f"Age bins: {one_line(err)}"
    if allowed_problem:
        ctx.data_problem = allowed_problem
    elif ctx.is_demo and not demo_setup.demo_is_built(root):
        ctx.data_problem = "The demo dataset has not been built yet: open the Overview page to build it."
    elif not root.exists():
        ctx.data_problem = f"Dataset folder {root} does not exist: check the path in the sidebar."
    else:
        try:
            ctx.index = cached_index(str(root.resolve()), dataset_stamp(root.resolve()), bins)
        except Exception as err:  # any indexing error becomes a one-line message
            ctx.data_problem = f"Could not index {root}: {one_line(err)}"

    fp = ctx.meta.get("data_fingerprint")
    if ctx.predictions is not None and ctx.index is not None and fp and fp != ctx.fingerprint:
        ctx.run_matches_data = False
        ctx.run_problem = (f"Run {ctx.run_path.name} was made on another dataset "
                           f"({ctx.meta.get('data_root', 'unknown folder')}): choose a run of "
                           f"this dataset, or predict one with `python -m audit predict`.")
    return ctx


def run_bins(meta: dict) -> labels.AgeBins:
    """A run's age bins, from its meta (runs without them were made with the default bins)."""
    b = meta.get("bins")
    return labels.AgeBins.from_dict(b) if b else labels.DEFAULT_BINS


GOTO_PARAM = "goto"


def route_through_app(url_path: str) -> None:
    """Send a page opened outside the router back through app.py.

    Streamlit treats a folder named `pages/` as an old-style multipage app until app.py has
    called `st.navigation` once in the server process; a deep link (e.g. /samples) opened first
    would run the page alone, without the sidebar. Redirect to app.py, which opens the page.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        legacy = bool(PagesManager.uses_pages_directory)
    except Exception:  # internal API moved: nothing to fix then
        legacy = False
    # Only once per session: after app.py ran, the process is in st.navigation mode for good
    # (AppTest resets Streamlit's flag before every run, where a redirect would drop the click).
    if legacy and not st.session_state.get(ROUTER_KEY):
        st.switch_page("app.py", query_params={GOTO_PARAM: url_path})


def page_context(*, need_data: bool = True, need_run: bool = False) -> AppContext:
    """The context for a page; shows what is missing and stops the page when it cannot draw."""
    ctx = load_context()
    if need_data and ctx.index is None:
        st.error(ctx.data_problem or "No dataset is configured: set one in the sidebar.")
        st.stop()
    if need_run and not ctx.has_run:
        if ctx.run_problem:
            st.error(ctx.run_problem)
        else:
            st.info("No run is loaded: choose a run in the sidebar, or predict one with "
                    "`python -m audit predict DATA --checkpoint weights/demo/model.pt`.")
        st.stop()
    return ctx


def one_line(err: BaseException) -> str:
    """An exception as one readable line (no stack trace on the page)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# ----------------------------------------------------------------------------- derived frames

def predictions_with_suspects(ctx: AppContext) -> pd.DataFrame:
    """The run's predictions plus `correct` and `suspect_score` (0 where not suspected)."""
    return _predictions_with_suspects(str(ctx.run_path), run_stamp(ctx.run_path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _predictions_with_suspects(run_path: str, stamp: tuple) -> pd.DataFrame:
    preds, _meta = cached_run(run_path, stamp)
    df = preds.copy()
    df["correct"] = df["pred_class"].to_numpy() == df["class_id"].to_numpy()
    from audit.noise.merge import suspect_scores

    df["suspect_score"], df["suspect_fields"] = suspect_scores(df, cached_suspects(run_path, stamp))
    return df


# ----------------------------------------------------------------------------- export

EXPORT_DOWNLOADS = {  # download label -> file name written by audit.export.export_all
    "Relabeling list (relabel.csv)": "relabel.csv",
    "Corrected train.csv": "train.csv",
    "Corrected info.csv": "info.csv",
    "All images, corrected (images.csv)": "images.csv",
}


@st.cache_data(show_spinner="Writing the export…", max_entries=4)
def _export(reviews: str, data_root: str, data_stamp: tuple, fingerprint: str, last_decision_id: int,
            bins: labels.AgeBins) -> dict:
    """export_all into a fresh workspace/exports/<time>/ folder, once per state of the decisions."""
    from audit import export as audit_export

    index = cached_index(data_root, data_stamp, bins)  # the session's bins turn bin codes into ages
    written = audit_export.export_all(review_store(reviews), index)
    return {name: (str(path), Path(path).read_bytes()) for name, path in written.items()}


def export_files(ctx: AppContext, latest: pd.DataFrame) -> dict[str, tuple[str, bytes, str]]:
    """label -> (file name, CSV bytes, where it was written) for the download buttons."""
    root = str(ctx.data_root.resolve())
    files = _export(str(reviews_path()), root, dataset_stamp(Path(root)), ctx.fingerprint, int(latest["id"].max()),
                    ctx.bins)
    return {label: (name, files[name][1], files[name][0]) for label, name in EXPORT_DOWNLOADS.items() if name in files}


# ----------------------------------------------------------------------------- the model server (remote mode)

MODEL_URL_KEY = "model_url"  # str: the model server answering single-image work; "" = in this process


def model_url() -> str:
    """The session's model server URL (MASK_AUDIT_MODEL_URL or the sidebar field), "" = in-process."""
    from audit.model_client import configured_model_url
    st.session_state.setdefault(MODEL_URL_KEY, configured_model_url())
    return (st.session_state.get(MODEL_URL_KEY) or "").strip()


@st.cache_resource(show_spinner=False, max_entries=4)
def model_client(url: str):
    """One ModelClient per server URL (an HTTP session), shared by every session."""
    from audit.model_client import ModelClient
    return ModelClient(url)


@st.cache_data(show_spinner=False, ttl=15, max_entries=4)
def model_server_card(url: str) -> dict:
    """{"ok": True, "card", "checkpoint", "checkpoint_sha256", "device", ...} from GET /card, or
    {"ok": False, "error": one line}; re-asked every 15 s so a restarted server shows up."""
    try:
        return {"ok": True, **model_client(url).card()}
    except Exception as err:  # unreachable, refused, bad URL: a line for the sidebar
        return {"ok": False, "error": one_line(err)}


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def image_predictor(checkpoint: str, checkpoint_sha256: str):
    """The in-process ImagePredictor of a checkpoint (uploads), shared by every session (calls are
    serialised inside); the same code the model server runs."""
    from audit.serving import ImagePredictor
    return ImagePredictor(checkpoint)


@st.cache_data(show_spinner="Computing Grad-CAM on the model server…", max_entries=64)
def remote_gradcam_overlays(url: str, image_file: str, image_stamp: tuple, head: str, given: int,
                            predicted: int, bins: labels.AgeBins = labels.DEFAULT_BINS,
                            ) -> tuple[list[tuple[str, object]], float]:
    """Like `gradcam_overlays`, answered by the model server: ([(caption, PIL overlay)], the
    server model's input crop)."""
    card = model_server_card(url)
    crop = float(card["card"].get("crop", 1.0)) if card.get("ok") else None
    pair = model_client(url).explain_pair(Path(image_file), head, int(given), int(predicted),
                                          methods=("gradcam", "eigencam"), crop=crop)
    if crop is None:
        crop = model_client(url).card()["card"].get("crop", 1.0)
    return _captioned_overlays(pair, labels.field_value_names(head, bins)), float(crop)


@st.cache_data(show_spinner=False, max_entries=8)
def _checkpoint_sha(checkpoint: str, stamp: tuple) -> str:
    from audit.model import checkpoint_sha256
    return checkpoint_sha256(checkpoint)


def checkpoint_sha(checkpoint: str) -> str:
    """SHA-256 of a checkpoint file, hashed once per file version."""
    return _checkpoint_sha(checkpoint, _stat_stamp([checkpoint]))


def uploads_dir() -> Path:
    return workspace.workspace_dir() / "uploads"


def store_upload(data: bytes, *, max_mb: float) -> Path:
    """Check an uploaded photo (type, size, shape, full decode) and keep it in workspace/uploads/
    under its content hash (never in the data folder; the same photo twice is one file).
    Raises ValueError with a one-line reason."""
    import hashlib
    from audit.file_io import write_atomic
    from audit.serving import RequestError, check_upload
    try:
        check_upload(data, max_bytes=int(max_mb * 2**20))
    except RequestError as err:
        raise ValueError(err.reason) from None
    from PIL import Image
    import io
    with Image.open(io.BytesIO(data)) as img:
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[img.format]
    path = uploads_dir() / f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: f.write(data))
    return path


@st.cache_data(show_spinner="Predicting…", max_entries=16)
def upload_predictions(model_key: tuple, files: tuple[str, ...]) -> list[dict]:
    """The model's prediction dicts (audit/serving.py's JSON) for stored uploads, in order.
    model_key: ("remote", url, sha) or ("local", checkpoint, sha). Files are named by content hash,
    so the key never goes stale."""
    kind, where, sha = model_key
    if kind == "remote":
        return model_client(where).predict([Path(f) for f in files])
    predictor = image_predictor(where, sha)
    return predictor.predict([predictor.prepare(Path(f).read_bytes()) for f in files])


def explain_upload(model_key: tuple, image_file: str, head: str, predicted: int,
                   bins: labels.AgeBins = labels.DEFAULT_BINS) -> list[tuple[str, object]]:
    """[(caption, overlay)] of Grad-CAM and EigenCAM for the predicted value of `head`: the sample
    detail's cached calls, with the given label set to the prediction (an upload has no label)."""
    kind, where, sha = model_key
    stamp = _stat_stamp([image_file])
    if kind == "remote":
        overlays, _crop = remote_gradcam_overlays(where, image_file, stamp, head, int(predicted), int(predicted), bins)
    else:
        overlays = gradcam_overlays(where, sha, image_file, stamp, head, int(predicted), int(predicted), bins)
    return [(caption.replace(" · predicted:", ":"), image) for caption, image in overlays if "· predicted:" in caption]


# ----------------------------------------------------------------------------- data quality (issue #15)

QUALITY_SELECTION_KEY = "quality_selection"  # list of paths the Data quality page hands to Samples


def quality_run(ctx: AppContext):
    """The session's run as an audit.runs.Run for the person checks, or None (no run / other data)."""
    if not ctx.has_run or ctx.run_path is None:
        return None
    from audit.runs import Run

    try:
        return Run.open(ctx.run_path)
    except Exception:  # an unreadable run: the image checks still work
        return None


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_quality(root: str, data_stamp: tuple, bins: labels.AgeBins, run_path: str, stamp: tuple):
    """(findings, source) written by `python -m audit quality` / the Data quality page, or None."""
    from audit.quality import load_cached_report
    from audit.runs import Run

    index = cached_index(root, data_stamp, bins)
    run = Run.open(run_path) if run_path else None
    report = load_cached_report(index, run=run)
    return None if report is None else (report.findings, report.embeddings_from)


def cached_quality(ctx: AppContext):
    """The quality findings of the session's data (and run) when already computed, else None:
    (findings DataFrame, where the person checks got embeddings)."""
    if ctx.index is None:
        return None
    root = str(ctx.data_root.resolve())
    run = quality_run(ctx)
    run_path = str(run.path) if run is not None else ""
    return _cached_quality(root, dataset_stamp(Path(root)), ctx.bins, run_path,
                           run_stamp(Path(run_path)) if run_path else ())


def clear_quality_cache() -> None:
    """After the checks ran: the next read finds the new findings."""
    _cached_quality.clear()


EXPORT_DOWNLOADS["Excluded files (excluded_files.csv)"] = "excluded_files.csv"  # written once a file is excluded
