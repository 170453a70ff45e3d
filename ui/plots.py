"""Plotly figure builders for the pages: data in, `go.Figure` out, no streamlit."""
from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import plotly.graph_objects as go

SPLIT_COLOURS = {"train": "#4C78A8", "eval": "#F58518", "images": "#72B7B2"}
# Fixed colours for values whose meaning is a colour already (right/wrong, the two splits).
# Okabe-Ito blue / orange: correct and wrong told apart by colour-blind readers too (as the cards)
KNOWN_COLOURS = {"correct": "#0072B2", "wrong": "#E69F00", **SPLIT_COLOURS}
# 24 distinguishable colours for categorical maps (up to 18 classes)
CATEGORICAL = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6",
               "#9D755D", "#BAB0AC", "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B",
               "#E377C2", "#7F7F7F", "#BCBD22", "#17BECF", "#393B79", "#637939", "#8C6D31", "#843C39")


def count_bars(df: pd.DataFrame, column: str, *, names: dict | None = None, title: str = "",
               by: str = "split", height: int = 280) -> go.Figure:
    """Bar chart of row counts per value of `column`, one bar group per value of `by`.

    `names` maps codes to readable labels and fixes the order of the x axis.
    """
    counts = df.groupby([column, by], observed=True).size().rename("count").reset_index()
    order = list(names) if names else sorted(counts[column].unique(), key=lambda v: (str(type(v)), v))
    fig = go.Figure()
    for group, sub in counts.groupby(by, sort=True):
        y = sub.set_index(column)["count"].reindex(order).fillna(0).to_numpy()
        fig.add_bar(x=[str(names.get(v, v)) if names else str(v) for v in order], y=y,
                    name=str(group), marker_color=SPLIT_COLOURS.get(str(group)),
                    hovertemplate="%{x}: %{y:,}<extra>" + str(group) + "</extra>")
    fig.update_layout(title=title, barmode="group", height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
                      xaxis=dict(type="category"))
    return fig


def confusion_figure(matrix: np.ndarray, labels: list[str], *, normalised: bool, title: str = "",
                     height: int | None = None) -> go.Figure:
    """Heatmap of an (K, K) confusion matrix (rows = given/true, columns = predicted).

    A transparent scatter point sits on every cell so that a click selects it; its customdata
    is `[true_index, pred_index, count]`.
    """
    k = len(labels)
    z = np.asarray(matrix, dtype=float)
    text = [[(f"{v:.2f}" if normalised else f"{int(v):,}") if v else "" for v in row] for row in z]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=z, x=list(range(k)), y=list(range(k)), colorscale="Blues", showscale=False,
        text=text, texttemplate="%{text}", textfont=dict(size=10 if k > 6 else 14), hoverinfo="skip",
        zmin=0, zmax=1 if normalised else max(float(z.max()), 1.0)))
    ii, jj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    custom = np.stack([ii.ravel(), jj.ravel(), z.ravel()], axis=1)
    hover = [f"given: {labels[i]}<br>predicted: {labels[j]}<br>" + (f"{v:.3f}" if normalised else f"{int(v):,}")
             + "<br>click to open these samples" for i, j, v in zip(ii.ravel(), jj.ravel(), z.ravel())]
    fig.add_trace(go.Scatter(
        x=jj.ravel(), y=ii.ravel(), mode="markers", customdata=custom, hovertext=hover, hoverinfo="text",
        marker=dict(symbol="square", size=max(12, 400 // k), opacity=0.01, color="black"),
        selected=dict(marker=dict(opacity=0.25)), unselected=dict(marker=dict(opacity=0.01)), showlegend=False))
    size = height or (720 if k > 6 else 340)
    fig.update_layout(
        title=title, height=size, margin=dict(l=10, r=10, t=40 if title else 10, b=10), dragmode=False,
        xaxis=dict(title="predicted", tickmode="array", tickvals=list(range(k)), ticktext=labels, side="bottom",
                   showgrid=False, zeroline=False, tickangle=-60 if k > 6 else 0),
        yaxis=dict(title="given", tickmode="array", tickvals=list(range(k)), ticktext=labels, autorange="reversed",
                   showgrid=False, zeroline=False),
        clickmode="event+select")
    return fig


def _discrete_scale(colours: list[str]) -> list:
    """A step colorscale giving integer code i (with cmin -0.5, cmax k - 0.5) the colour colours[i]."""
    k = len(colours)
    scale = []
    for i, c in enumerate(colours):
        scale += [[i / k, c], [(i + 1) / k, c]]
    return scale


def typed_array(values: np.ndarray) -> dict:
    """(N,) uint8 / float32 -> plotly's base64 typed-array spec: ~1.3 bytes a byte in the JSON and
    one string to parse, where a JSON list costs 2-6 bytes and one parsed number a value.
    Plotly.js decodes it anywhere a data array goes, in `restyle` arguments too."""
    values = np.ascontiguousarray(values)
    return {"dtype": values.dtype.str.lstrip("<|"), "bdata": base64.b64encode(values.tobytes()).decode("ascii")}


def _colouring_style(values: pd.Series, *, continuous: bool, categories=None) -> tuple[dict, list[tuple[str, str]]]:
    """One colouring of the points -> (trace-0 marker settings, [(legend name, colour)]).

    Categorical values become uint8 codes on a step colorscale (a categorical colouring is one
    byte a point, not a colour string); continuous ones float32 on Viridis.
    """
    if continuous:
        v = np.asarray(values, dtype=np.float32)
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return ({"color": v, "colorscale": "Viridis", "cmin": lo, "cmax": hi if hi > lo else lo + 1.0,
                 "showscale": True, "colorbar.title.text": str(values.name or "")}, [])
    found, uniques = pd.factorize(pd.Series(values).to_numpy(), use_na_sentinel=False)
    uniques = [str(u) for u in uniques]  # as shown in the legend (a missing value: "nan")
    present = set(uniques)
    # legend in the order values appear in `categories` (e.g. class order), else sorted
    order = [v for v in dict.fromkeys(map(str, categories)) if v in present] if categories is not None \
        else sorted(present)
    order += sorted(present - set(order))
    if len(order) > 255:
        raise ValueError(f"{values.name}: {len(order)} categories, more than a colouring can tell apart")
    colours = [KNOWN_COLOURS.get(v, CATEGORICAL[i % len(CATEGORICAL)]) for i, v in enumerate(order)]
    position = {v: i for i, v in enumerate(order)}
    codes = np.array([position[u] for u in uniques], dtype=np.uint8)[found]
    return ({"color": codes, "colorscale": _discrete_scale(colours), "cmin": -0.5, "cmax": len(order) - 0.5,
             "showscale": False, "colorbar.title.text": ""}, list(zip(order, colours)))


def embedding_figure(xy: np.ndarray, colourings: dict[str, pd.Series], hover: list[str] | np.ndarray, *,
                     initial: str | None = None, continuous=(), categories: dict | None = None,
                     title: str = "", height: int = 650) -> go.Figure:
    """WebGL scatter of an (N, 2) layout that recolours in the browser.

    `colourings`: {option name: (N,) values}, categorical or, for names in `continuous`, numeric;
    `categories`: {option name: legend order of its values} (default: sorted). `initial`: the
    colouring shown first (default: the first).

    Trace 0 holds every point (its customdata is the row number in `xy`, so a selection maps back
    to rows). Traces 1..K hold no points: they are the legend's keys, K = the most values of any
    colouring. The "Colour by" dropdown (layout.updatemenus[0], one button per colouring, method
    "restyle") sets trace 0's marker colours and the keys' names, colours and visibility in the
    browser, without a Streamlit rerun: switching costs no round trip however many points there
    are. The figure carries every colouring as a base64 typed array (1 byte a point for a
    categorical one, 4 for a continuous one).
    """
    xy = np.asarray(xy, dtype=np.float32)
    names = list(colourings)
    initial = initial if initial in colourings else names[0]
    styles = {name: _colouring_style(colourings[name], continuous=name in continuous,
                                     categories=(categories or {}).get(name)) for name in names}
    n_keys = max([len(keys) for _marker, keys in styles.values()] + [1])
    marker_size = 4 if len(xy) > 5000 else 6
    fig = go.Figure()
    first_marker, first_keys = styles[initial]
    fig.add_trace(go.Scattergl(
        x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=np.arange(len(xy), dtype=np.int32), hovertext=hover,
        hoverinfo="text", showlegend=False, name="images",
        marker={"size": marker_size, **{k: v for k, v in first_marker.items() if k != "colorbar.title.text"},
                "colorbar": {"title": {"text": first_marker["colorbar.title.text"]}}}))
    for j in range(n_keys):
        value, colour = first_keys[j] if j < len(first_keys) else ("", "#000000")
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=value, visible=j < len(first_keys),
                                 marker=dict(size=8, color=colour), hoverinfo="skip", showlegend=True))
    buttons = []
    for name in names:
        marker, keys = styles[name]
        keys = keys + [("", "#000000")] * (n_keys - len(keys))
        # restyle values are per trace: [trace 0, key 1, ..., key K]
        args = {f"marker.{k}": [v] + [None] * n_keys for k, v in marker.items() if k != "color"}
        args["marker.color"] = [typed_array(marker["color"])] + [colour for _v, colour in keys]
        args["name"] = ["images"] + [value for value, _c in keys]
        args["visible"] = [True] + [value != "" for value, _c in keys]
        buttons.append(dict(label=name, method="restyle", args=[args]))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=44),
                      dragmode="lasso",
                      # legend above the plot, left: the toolbar (top right) no longer covers its first entry
                      legend=dict(itemsizing="constant", orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
                      # below the plot, opening upwards: clear of the legend and of the toolbar
                      updatemenus=[dict(type="dropdown", direction="up", buttons=buttons, active=names.index(initial),
                                        x=0.08, xanchor="left", y=-0.01, yanchor="top", showactive=True,
                                        bgcolor="white", bordercolor="#BBBBBB", font=dict(size=12))],
                      annotations=[dict(text="Colour by", x=0, xanchor="left", y=-0.045, yanchor="middle",
                                        xref="paper", yref="paper", showarrow=False, font=dict(size=12))],
                      xaxis=dict(showticklabels=False, zeroline=False),
                      yaxis=dict(showticklabels=False, zeroline=False))
    return fig


def probability_bars(probs: dict[str, tuple[list[str], np.ndarray]], *, given: dict[str, int] | None = None,
                     height: int = 220) -> go.Figure:
    """Horizontal bars of per-head probabilities: {head: (value names, (K,) probabilities)}.

    The given label of each head is outlined so a disagreement is visible at a glance.
    """
    from plotly.subplots import make_subplots
    heads = list(probs)
    fig = make_subplots(rows=1, cols=len(heads), subplot_titles=heads, horizontal_spacing=0.12)
    for c, head in enumerate(heads, start=1):
        names, p = probs[head]
        g = (given or {}).get(head)
        fig.add_bar(x=np.asarray(p, dtype=float), y=list(names), orientation="h", row=1, col=c, showlegend=False,
                    marker=dict(color=["#F58518" if i == g else "#4C78A8" for i in range(len(names))]),
                    hovertemplate="%{y}: %{x:.3f}<extra></extra>")
        fig.update_xaxes(range=[0, 1], row=1, col=c)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10))
    return fig
