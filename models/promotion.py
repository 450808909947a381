"""Champion/challenger: may a freshly trained model replace the serving one? (pure)

Both models are scored on the same held-out rows (this run's out-of-time,
out-of-customer test split). The challenger is promoted only if

1. it beats the champion on `metric` (strictly: a tie keeps the champion, so a
   retrain on unchanged data does not churn the alias), and
2. its calibration is not worse: Brier score and expected calibration error may
   rise by at most their tolerances (`churnProbability` must keep meaning what
   it says; a sharper ranking bought with worse probabilities is refused).

With no champion, the challenger is promoted. With a champion that cannot be
evaluated (it needs a feature the data no longer has), the challenger is
promoted and the reason says so. With a metric that cannot be computed on the
test rows (e.g. no churner in them), the champion stays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

CALIBRATION_METRICS = ("brier", "ece")


@dataclass(frozen=True)
class PromotionRules:
    metric: str = "pr_auc"
    brier_tolerance: float = 0.002
    ece_tolerance: float = 0.01


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    rules: PromotionRules
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None = None
    checks: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    rules: PromotionRules,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> PromotionDecision:
    """Apply the rules above to two metric dicts (keys as in models.metrics.evaluate_churn)."""

    def decision(promote: bool, reason: str, checks: dict[str, bool] | None = None):
        return PromotionDecision(promote, reason, rules, dict(challenger), champion and
                                 dict(champion), champion_version, checks or {})

    if champion is None and champion_error is None:
        return decision(True, "first model: no champion yet")
    if champion is None:
        return decision(True, f"champion v{champion_version} cannot be evaluated on the "
                               f"current data ({champion_error}); the challenger replaces it")
    new, old = challenger.get(rules.metric, math.nan), champion.get(rules.metric, math.nan)
    if math.isnan(new) or math.isnan(old):
        return decision(False, f"{rules.metric} cannot be computed on the test rows "
                               f"(challenger {new}, champion {old}); the champion stays")
    checks = {f"beats_on_{rules.metric}": new > old}
    tolerance = {"brier": rules.brier_tolerance, "ece": rules.ece_tolerance}
    for name in CALIBRATION_METRICS:
        a, b = challenger.get(name, math.nan), champion.get(name, math.nan)
        checks[f"{name}_not_worse"] = bool(math.isnan(a) or math.isnan(b)
                                           or a <= b + tolerance[name])
    if all(checks.values()):
        return decision(True, f"challenger {rules.metric} {new:.4f} > champion v"
                              f"{champion_version} {old:.4f}, calibration within tolerance",
                        checks)
    why = []
    if not checks[f"beats_on_{rules.metric}"]:
        why.append(f"{rules.metric} {new:.4f} does not beat the champion's {old:.4f}")
    for name in CALIBRATION_METRICS:
        if not checks[f"{name}_not_worse"]:
            why.append(f"{name} {challenger[name]:.4f} is worse than the champion's "
                       f"{champion[name]:.4f} by more than {tolerance[name]}")
    return decision(False, f"champion v{champion_version} stays: " + "; ".join(why), checks)


def decision_markdown(decision: PromotionDecision, version: str) -> str:
    """Why challenger `version` was promoted or not, with both models' test metrics."""
    rows = ["| metric | challenger | champion |", "|---|---|---|"]
    for key, value in decision.challenger.items():
        old = decision.champion.get(key) if decision.champion else None
        rows.append(f"| {key} | {value:.4f} | {'' if old is None else f'{old:.4f}'} |")
    verdict = "promoted to champion" if decision.promote else "not promoted"
    return "\n".join([
        f"# Churn challenger v{version}: {verdict}",
        "",
        decision.reason,
        "",
        f"Rule: beat the champion on test `{decision.rules.metric}`; Brier may rise by at most "
        f"{decision.rules.brier_tolerance}, ECE by at most {decision.rules.ece_tolerance}.",
        "",
        *rows,
    ])
