"""Plotly figure builders for the pages: data in, `go.Figure` out, no streamlit."""
from __future__ import annotations

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


def embedding_figure(xy: np.ndarray, colour: pd.Series, hover: list[str] | np.ndarray, *, title: str = "",
                     continuous: bool = False, categories=None, height: int = 650) -> go.Figure:
    """WebGL scatter of an (N, 2) layout; `colour` (N,) is categorical or, if `continuous`, numeric.

    `categories`: the legend order of categorical values (default: sorted).

    Each point's customdata is its row number in `xy`, so a selection maps back to rows.
    """
    xy = np.asarray(xy, dtype=np.float32)
    rows = np.arange(len(xy))
    fig = go.Figure()
    marker_size = 4 if len(xy) > 5000 else 6
    if continuous:
        fig.add_trace(go.Scattergl(
            x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=rows, hovertext=hover, hoverinfo="text",
            marker=dict(size=marker_size, color=np.asarray(colour, dtype=float), colorscale="Viridis",
                        showscale=True, colorbar=dict(title=str(colour.name or ""))), showlegend=False))
    else:
        values = colour.astype(str).to_numpy()
        hover = np.asarray(hover, dtype=object)
        # legend in the order values first appear in `categories` (e.g. class order), else sorted
        order = [v for v in dict.fromkeys(map(str, categories))] if categories is not None else sorted(set(values))
        for i, value in enumerate(v for v in order if v in set(values)):
            m = values == value
            fig.add_trace(go.Scattergl(
                x=xy[m, 0], y=xy[m, 1], mode="markers", name=value, customdata=rows[m], hovertext=hover[m],
                hoverinfo="text", marker=dict(size=marker_size,
                                              color=KNOWN_COLOURS.get(value, CATEGORICAL[i % len(CATEGORICAL)]))))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      dragmode="lasso",
                      # legend above the plot, left: the toolbar (top right) no longer covers its first entry
                      legend=dict(itemsizing="constant", orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
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
