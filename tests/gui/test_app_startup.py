"""Start-up housekeeping of the real app (run_app)."""
import gc

from cnnviz.app import freeze_startup_objects


def test_startup_objects_are_kept_out_of_full_collections():
    gc.unfreeze()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 10_000  # torch, Qt and the test session: walked by no collection
        junk = [[i] for i in range(10)]  # objects made later are still collected as usual
        junk.append(junk)
        del junk
        assert gc.collect() >= 11
    finally:
        gc.unfreeze()
