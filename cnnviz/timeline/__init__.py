"""The run timeline: what a run records as it trains, and how any step of it is shown again.

``store`` (the files), ``schedule`` (which steps get keyframes within the byte budget), ``stats`` (per-layer
statistics), ``recorder`` (writes a run while it trains), ``reader`` (reads it, also while it is written),
``replay`` (the exact weights of any step), ``follow`` (a run written elsewhere as a stream of messages).
No Qt here.
"""
