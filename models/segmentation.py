"""K-Means customer segments named after the paper's five segments (pure, picklable).

Naming rule (deterministic): each cluster's centroid is placed on two axes,
usage = the percentile of the cluster's mean `monthly_gb` among all customers,
price = the percentile of its mean `monthly_price`. The paper's segments are
prototype points on those axes:

    Premium Power Users   (usage 0.90, price 0.90)  highest usage and price
    Price-Conscious Power (usage 0.80, price 0.25)  high usage, lower price
    Value-Seekers         (usage 0.50, price 0.50)  mid usage
    Budget Users          (usage 0.40, price 0.05)  moderate usage, low price
    Casual Premium        (usage 0.10, price 0.80)  low usage, high price

Clusters and names are matched one-to-one minimising total squared distance
(Hungarian algorithm, scipy.optimize.linear_sum_assignment). With k != 5 the
clusters are called "Segment i", ordered by usage. Rows are fitted in user_id
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
    "Premium Power Users": (0.90, 0.90),
    "Price-Conscious Power": (0.80, 0.25),
    "Value-Seekers": (0.50, 0.50),
    "Budget Users": (0.40, 0.05),
    "Casual Premium": (0.10, 0.80),
}


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

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        values = features[self.feature_names].apply(pd.to_numeric, errors="coerce")
        return values.fillna(self.fill_values).to_numpy(dtype=float)

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
        labels = self.kmeans.predict(self.scaler.transform(self._matrix(features)))
        names = pd.Series(labels).map(self.cluster_names).to_numpy()
        return pd.DataFrame(
            {
                "segment_id": [self.segment_ids[n] for n in names],
                "segment_name": names,
                "elasticity": [self.elasticity[n] for n in names],
            },
            index=features.index,
        ).astype({"segment_id": "int64", "elasticity": float})


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


def fit_segments(
    features: pd.DataFrame, k: int, seed: int, elasticity_prior: dict[str, float]
) -> SegmentModel:
    """RobustScaler + KMeans(k, n_init=10) on every numeric column; clusters named.

    `features` needs `monthly_gb` and `monthly_price` (the naming axes). Elasticity
    comes from `elasticity_prior` by name; a name without a prior (k != 5) gets the
    prior's median.
    """
    for column in (USAGE_COLUMN, PRICE_COLUMN):
        if column not in features.columns:
            raise KeyError(f"segmentation features need a {column!r} column")
    if len(features) < k:
        raise ValueError(f"{len(features)} customers cannot form {k} segments")
    ordered = features.sort_index(kind="mergesort")
    names = [c for c in ordered.columns if pd.api.types.is_numeric_dtype(ordered[c])]
    numeric = ordered[names].apply(pd.to_numeric, errors="coerce")
    fill = {c: float(v) if np.isfinite(v) else 0.0 for c, v in numeric.median().items()}
    X = numeric.fillna(fill).to_numpy(dtype=float)
    scaler = RobustScaler().fit(X)
    kmeans = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(scaler.transform(X))
    labels = kmeans.labels_

    usage = numeric[USAGE_COLUMN].fillna(fill[USAGE_COLUMN]).to_numpy()
    price = numeric[PRICE_COLUMN].fillna(fill[PRICE_COLUMN]).to_numpy()
    usage_mean = np.array([usage[labels == c].mean() for c in range(k)])
    price_mean = np.array([price[labels == c].mean() for c in range(k)])
    cluster_names, naming_distance = name_clusters(
        _percentile_of(usage, usage_mean), _percentile_of(price, price_mean), k
    )
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
    )


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
