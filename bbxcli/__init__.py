"""The `bbx` command line: it drives flows, tasks and the simulator.

Kept apart from `bbx/` (the core that tasks import) so the core never imports what
imports it.
"""
