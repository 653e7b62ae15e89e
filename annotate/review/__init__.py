"""Clinician review: the prioritised queue, claims, decisions that become gold, player reports.

Services live in `annotate.review.services`, reads in `annotate.review.selectors`; the names other
apps call are re-exported here.
"""

from annotate.review.services import (
    on_decision_settled,
    review_decision_submit,
    review_item_claim,
    review_item_claim_next,
    review_item_open,
    review_item_release,
    review_item_report,
)

__all__ = [
    "on_decision_settled",
    "review_decision_submit",
    "review_item_claim",
    "review_item_claim_next",
    "review_item_open",
    "review_item_release",
    "review_item_report",
]
