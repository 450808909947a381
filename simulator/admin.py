"""The app's admin at the pricing screen: approve a pending proposal, then apply it.

What the app's own "approve" and "apply" endpoints write: the proposal moves
pending → approved → applied (its `updatedAt` is when), and each changed plan's
`pricing.monthly` becomes the change's `proposedPrice`. The app leaves
`pricing.yearly` as it was, whatever the proposal says about it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pymongo.database import Database


@dataclass(frozen=True)
class AppliedProposal:
    proposal_id: object
    plans: dict[str, float]  # plan name → the monthly list price it now has


def approve_and_apply_pending(db: Database, when: dt.datetime) -> list[AppliedProposal]:
    """Approve and apply every pending proposal, oldest first, as an admin would."""
    admin = db.users.find_one({"role": "admin"}, {"_id": 1})
    applied: list[AppliedProposal] = []
    for proposal in db.pricingproposals.find({"status": "pending"}).sort("createdAt", 1):
        db.pricingproposals.update_one(
            {"_id": proposal["_id"]},
            {"$set": {"status": "approved", "approvedBy": admin and admin["_id"],
                      "approvedAt": when, "updatedAt": when}},
        )
        prices: dict[str, float] = {}
        for change in proposal.get("changes", []):
            db.plans.update_one(
                {"_id": change["plan"]},
                {"$set": {"pricing.monthly": change["proposedPrice"], "updatedAt": when}},
            )
            prices[change.get("planName", str(change["plan"]))] = change["proposedPrice"]
        db.pricingproposals.update_one(
            {"_id": proposal["_id"]},
            {"$set": {"status": "applied", "appliedAt": when, "updatedAt": when}},
        )
        applied.append(AppliedProposal(proposal["_id"], prices))
    return applied
