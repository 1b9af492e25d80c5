"""Human feedback collection: a labelling web app over a SQLite store.

``irlhf.label.store`` keeps queries (pairwise clip comparisons, text rankings, DAgger action choices, TAMER
feedback clips), their media and the labels people give them in one SQLite file, safe for many labellers
and a training loop at once; ``aggregate`` turns several annotators' labels into one training target and
``export_jsonl`` / ``export_text_pairs`` write a session out. ``irlhf.label.kinds`` defines the kinds of
query with their payload and label checks; ``irlhf.label.schema`` the SQLite tables, version and migrations.
``irlhf.label.render`` turns frames into GIF/PNG media, ``irlhf.label.server`` serves the labelling page
(FastAPI + uvicorn) and ``irlhf.label.people`` lets a person stand in for a learner's synthetic teacher; import
those directly: this package re-exports only the store, so importing it never pulls in FastAPI, Pillow or torch.
"""

from irlhf.label.store import (
    KINDS,
    Label,
    LabelError,
    LabelStore,
    Query,
    StoreError,
    UnknownMediaError,
    UnknownQueryError,
    aggregate,
    check_label,
    check_payload,
    export_jsonl,
    export_text_pairs,
)

__all__ = ["KINDS", "Label", "LabelError", "LabelStore", "Query", "StoreError", "UnknownMediaError",
           "UnknownQueryError", "aggregate", "check_label", "check_payload", "export_jsonl", "export_text_pairs"]
