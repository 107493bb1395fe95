"""Keeps Streamlit's garbage collection after each script run cheap.

Streamlit runs a full collection (``gc.collect(2)``) after every script run, holding the GIL,
and the browser learns that the run finished only once it is over. The console's process holds
torch, the encoder and (embedded profile) the whole API: about 650,000 objects that the cyclic
collector walks in 270-300 ms on 2 cores. That was most of a search's click-to-results time
(``benchmarks/bench_console.py``). Those objects live as long as the process, so they are moved
to the collector's permanent generation (``gc.freeze``); each run's collection then walks only
what is new. Frozen objects are still freed by reference counting; only a reference cycle
among them would stay until the process ends.
"""

from __future__ import annotations

import gc

#: Freeze once this many objects survived a full collection since the last freeze: a later
#: lazy load (a model, a module) is frozen too, per-run garbage never is (the collection
#: after the previous run already took it). 10,000 objects take ~5 ms to walk.
SURVIVORS = 10_000


def _served() -> bool:
    """Whether this is a Streamlit server (not AppTest in a test process, where freezing
    would keep earlier tests' cyclic garbage, e.g. database connections, alive)."""
    from streamlit import runtime

    return runtime.exists() and isinstance(runtime.get_instance(), runtime.Runtime)


def settle(survivors: int = SURVIVORS) -> bool:
    """Freeze what survived the last full collection when it is ``survivors`` objects or
    more; called at the start of each script run. Returns whether it froze."""
    if not _served() or len(gc.get_objects(generation=2)) < survivors:
        return False
    gc.freeze()
    return True
