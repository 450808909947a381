"""K-Means customer segments named after the paper's five segments (pure, picklable).

Clustering space: each feature named in `ClusteringSpace.weights` is optionally
log1p-transformed (skewed, non-negative volumes and prices), robust-scaled
(median/IQR) and multiplied by its weight, so the business decides how much
each behaviour counts; a feature with weight 0 is kept for profiles only.

Naming rule (deterministic), first fit: each cluster's centroid is placed on two
axes, usage = the percentile of the cluster's mean `monthly_gb` among all
customers, price = the percentile of its mean `monthly_price`. The paper's
segments are prototype points on those axes. Usage positions follow the paper's
usage bands (Casual Premium < 30 GB < Value-Seekers 30-60 < Budget Users 50-80 <
Price-Conscious Power 100+ < Premium Power Users 150+) with its shares (10, 30,
20, 25, 15 %): the prototype is the middle percentile of each band. Price
positions follow the paper's descriptions (Budget cheapest, Price-Conscious
below Value-Seekers, Casual and Power Premium on premium plans):

    Premium Power Users   (usage 0.92, price 0.90)
    Price-Conscious Power (usage 0.72, price 0.35)
    Value-Seekers         (usage 0.25, price 0.45)
    Budget Users          (usage 0.50, price 0.10)
    Casual Premium        (usage 0.05, price 0.75)

Clusters and names are matched one-to-one minimising total squared distance
(Hungarian algorithm, scipy.optimize.linear_sum_assignment). With k != 5 the
clusters are called "Segment i", ordered by usage.

Retrain (a previous model given): the new clusters inherit the previous model's
names by one-to-one matching of centroids in the new clustering space (the
previous centroids are mapped back to feature units, then through the new
scaler), and K-Means also tries a start from those centroids. A customer whose
behaviour did not change therefore keeps its name. Rows are fitted in user_id
order, so the result does not depend on input row order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.preprocessing import RobustScaler

USAGE_COLUMN = "monthly_gb"
PRICE_COLUMN = "monthly_price"
N_INIT = 10
SEGMENT_PROTOTYPES: dict[str, tuple[float, float]] = {
    "Premium Power Users": (0.92, 0.90),
    "Price-Conscious Power": (0.72, 0.35),
    "Value-Seekers": (0.25, 0.45),
    "Budget Users": (0.50, 0.10),
    "Casual Premium": (0.05, 0.75),
}


@dataclass(frozen=True)
class ClusteringSpace:
    """How features become K-Means coordinates (see the module docstring)."""

    weights: dict[str, float]  # feature -> weight after robust scaling; 0: profile only
    log_features: tuple[str, ...] = ()  # log1p before scaling (non-negative, skewed)

    def __post_init__(self) -> None:
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("the clustering space needs at least one feature with weight > 0")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("clustering weights must not be negative")


@dataclass
class SegmentModel:
    feature_names: list[str]
    fill_values: dict[str, float]  # training medians for missing values
    scaler: RobustScaler
    kmeans: KMeans
    cluster_names: dict[int, str]  # k-means label -> segment name
    segment_ids: dict[str, int]  # segment name -> stable id (prototype order)
    elasticity: dict[str, float]  # segment name -> elasticity
    inertia: float
    # Squared distance of each named centroid to its prototype (0..2): how well the
    # data fits the paper's segments; large values mean the name is a weak fit.
    naming_distance: dict[str, float]
    weights: np.ndarray | None = None  # per feature_names; None: all 1 (older models)
    log_features: tuple[str, ...] = ()
    naming: str = "prototypes"  # "prototypes" or "previous model"

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        values = features[self.feature_names].apply(pd.to_numeric, errors="coerce")
        return values.fillna(self.fill_values).to_numpy(dtype=float)

    def _weights(self) -> np.ndarray:
        return np.ones(len(self.feature_names)) if self.weights is None else self.weights

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Rows of `features` as K-Means coordinates."""
        return _space(self._matrix(features), self.feature_names, self.log_features,
                      self.scaler, self._weights())

    def centroids_in_feature_units(self) -> np.ndarray:
        """Cluster centres (k × features) back in the features' own units."""
        w = self._weights()
        scaled = self.kmeans.cluster_centers_ / np.where(w > 0, w, 1.0)
        raw = self.scaler.inverse_transform(scaled)
        for j, name in enumerate(self.feature_names):
            if name in self.log_features:
                raw[:, j] = np.expm1(raw[:, j])
        return raw

    def assign(self, features: pd.DataFrame) -> pd.DataFrame:
        """segment_id (int), segment_name, elasticity per row, same index as `features`."""
        if len(features) == 0:
            return pd.DataFrame(
                {
                    "segment_id": pd.Series(dtype="int64"),
                    "segment_name": pd.Series(dtype=str),
                    "elasticity": pd.Series(dtype=float),
                },
                index=features.index,
            )
        labels = self.kmeans.predict(self.transform(features))
        names = pd.Series(labels).map(self.cluster_names).to_numpy()
        return pd.DataFrame(
            {
                "segment_id": [self.segment_ids[n] for n in names],
                "segment_name": names,
                "elasticity": [self.elasticity[n] for n in names],
            },
            index=features.index,
        ).astype({"segment_id": "int64", "elasticity": float})


def _space(
    X: np.ndarray,
    names: list[str],
    log_features: tuple[str, ...],
    scaler: RobustScaler,
    weights: np.ndarray,
) -> np.ndarray:
    X = X.copy()
    for j, name in enumerate(names):
        if name in log_features:
            X[:, j] = np.log1p(np.clip(X[:, j], 0.0, None))
    return scaler.transform(X) * weights


def _percentile_of(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Empirical CDF of `values` at `points` (mid-rank for ties)."""
    ordered = np.sort(values)
    lo = np.searchsorted(ordered, points, side="left")
    hi = np.searchsorted(ordered, points, side="right")
    return (lo + hi) / (2.0 * len(ordered))


def name_clusters(
    usage_pct: np.ndarray, price_pct: np.ndarray, k: int
) -> tuple[dict[int, str], dict[str, float]]:
    """Cluster index -> segment name by the documented rule (see module docstring),
    and each name's squared distance to its prototype (NaN for "Segment i")."""
    if k != len(SEGMENT_PROTOTYPES):
        order = np.lexsort((price_pct, usage_pct))
        named = {int(c): f"Segment {i}" for i, c in enumerate(order)}
        return named, {name: float("nan") for name in named.values()}
    names = list(SEGMENT_PROTOTYPES)
    protos = np.array([SEGMENT_PROTOTYPES[n] for n in names])
    centroids = np.column_stack([usage_pct, price_pct])
    cost = ((centroids[:, None, :] - protos[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    named = {int(r): names[c] for r, c in zip(rows, cols, strict=True)}
    distance = {names[c]: float(cost[r, c]) for r, c in zip(rows, cols, strict=True)}
    return named, distance


def default_space(features: pd.DataFrame) -> ClusteringSpace:
    """Every numeric column, weight 1, no logs (the plain robust-scaled K-Means)."""
    return ClusteringSpace(
        {c: 1.0 for c in features.columns if pd.api.types.is_numeric_dtype(features[c])}
    )


def fit_segments(
    features: pd.DataFrame,
    k: int,
    seed: int,
    elasticity_prior: dict[str, float],
    space: ClusteringSpace | None = None,
    previous: SegmentModel | None = None,
) -> SegmentModel:
    """RobustScaler + KMeans(k, n_init=10) in `space` (default: every numeric column);
    clusters named by the prototypes, or after `previous` (a retrain) when it has the
    same k and features.

    `features` needs `monthly_gb` and `monthly_price` (the naming axes). Elasticity
    comes from `elasticity_prior` by name; a name without a prior (k != 5) gets the
    prior's median.
    """
    for column in (USAGE_COLUMN, PRICE_COLUMN):
        if column not in features.columns:
            raise KeyError(f"segmentation features need a {column!r} column")
    if len(features) < k:
        raise ValueError(f"{len(features)} customers cannot form {k} segments")
    space = space or default_space(features)
    missing = [c for c in space.weights if c not in features.columns]
    if missing:
        raise KeyError(f"clustering space names features that are not there: {missing}")
    ordered = features.sort_index(kind="mergesort")
    names = list(space.weights)
    numeric = ordered[names].apply(pd.to_numeric, errors="coerce")
    fill = {c: float(v) if np.isfinite(v) else 0.0 for c, v in numeric.median().items()}
    raw = numeric.fillna(fill).to_numpy(dtype=float)
    logged = raw.copy()
    for j, name in enumerate(names):
        if name in space.log_features:
            logged[:, j] = np.log1p(np.clip(logged[:, j], 0.0, None))
    scaler = RobustScaler().fit(logged)
    weights = np.array([space.weights[n] for n in names], dtype=float)
    X = _space(raw, names, space.log_features, scaler, weights)

    reuse = (
        previous is not None
        and previous.kmeans.n_clusters == k
        and list(previous.feature_names) == names
    )
    kmeans = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(X)
    if reuse:
        assert previous is not None
        start = _space(previous.centroids_in_feature_units(), names, space.log_features,
                       scaler, weights)
        warm = KMeans(n_clusters=k, init=start, n_init=1, random_state=seed).fit(X)
        if warm.inertia_ <= kmeans.inertia_ * (1 + 1e-9):
            kmeans = warm
    labels = kmeans.labels_

    usage = ordered[USAGE_COLUMN].apply(pd.to_numeric, errors="coerce")
    usage = usage.fillna(usage.median()).fillna(0.0).to_numpy(dtype=float)
    price = ordered[PRICE_COLUMN].apply(pd.to_numeric, errors="coerce")
    price = price.fillna(price.median()).fillna(0.0).to_numpy(dtype=float)
    usage_mean = np.array([usage[labels == c].mean() if (labels == c).any() else 0.0
                           for c in range(k)])
    price_mean = np.array([price[labels == c].mean() if (labels == c).any() else 0.0
                           for c in range(k)])
    cluster_names, naming_distance = name_clusters(
        _percentile_of(usage, usage_mean), _percentile_of(price, price_mean), k
    )
    naming = "prototypes"
    if reuse:
        assert previous is not None
        cluster_names = _names_from_previous(kmeans.cluster_centers_, start, previous)
        naming = "previous model"
    if k == len(SEGMENT_PROTOTYPES):
        segment_ids = {n: i for i, n in enumerate(SEGMENT_PROTOTYPES)}
    else:
        segment_ids = {f"Segment {i}": i for i in range(k)}
    default = float(np.median(list(elasticity_prior.values()))) if elasticity_prior else 0.0
    elasticity = {n: float(elasticity_prior.get(n, default)) for n in segment_ids}
    return SegmentModel(
        feature_names=names,
        fill_values=fill,
        scaler=scaler,
        kmeans=kmeans,
        cluster_names=cluster_names,
        segment_ids=segment_ids,
        elasticity=elasticity,
        inertia=float(kmeans.inertia_),
        naming_distance=naming_distance,
        weights=weights,
        log_features=tuple(space.log_features),
        naming=naming,
    )


def _names_from_previous(
    centres: np.ndarray, previous_centres: np.ndarray, previous: SegmentModel
) -> dict[int, str]:
    """New cluster -> the name of the previous cluster whose centre is nearest
    (one-to-one, both sets of centres in the new clustering space)."""
    cost = ((centres[:, None, :] - previous_centres[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return {int(r): previous.cluster_names[int(c)] for r, c in zip(rows, cols, strict=True)}


def silhouette_by_k(
    features: pd.DataFrame,
    ks: list[int],
    seed: int,
    space: ClusteringSpace | None = None,
    sample_size: int = 2000,
) -> dict[int, float]:
    """Silhouette of K-Means in `space` for each k (on a fixed random sample of at
    most `sample_size` customers: the exact score is quadratic in customers)."""
    from sklearn.metrics import silhouette_score

    space = space or default_space(features)
    scores: dict[int, float] = {}
    for k in ks:
        if k < 2 or k >= len(features):
            continue
        model = fit_segments(features, k, seed, {}, space)
        X = model.transform(features.sort_index(kind="mergesort"))
        scores[k] = float(
            silhouette_score(X, model.kmeans.predict(X), sample_size=min(sample_size, len(X)),
                             random_state=seed)
        )
    return scores


def segment_profiles(features: pd.DataFrame, assignment: pd.DataFrame) -> pd.DataFrame:
    """Per segment (index segment_name): segment_id, size, share, mean usage/price, elasticity."""
    joined = features[[USAGE_COLUMN, PRICE_COLUMN]].join(assignment, how="inner")
    grouped = joined.groupby("segment_name", sort=False)
    profiles = pd.DataFrame(
        {
            "segment_id": grouped["segment_id"].first(),
            "size": grouped.size(),
            "mean_monthly_gb": grouped[USAGE_COLUMN].mean(),
            "mean_monthly_price": grouped[PRICE_COLUMN].mean(),
            "elasticity": grouped["elasticity"].first(),
        }
    )
    profiles["share"] = profiles["size"] / max(len(joined), 1)
    profiles.index.name = "segment_name"
    return profiles.sort_values("segment_id")[
        ["segment_id", "size", "share", "mean_monthly_gb", "mean_monthly_price", "elasticity"]
    ]
