"""The per-pair function every executor runs: compare two visits' written analyses, write the change atomically.

``compare_pair`` reads both visits from their folders under ``OUT/cases/`` (no visit is analysed twice), runs
``pipeline.compare`` and writes the change into an attempt folder under ``OUT/pairs/.partial/`` that is renamed
into place when complete, exactly as a case is (``CohortStore``). It never raises: a pair that fails becomes a
failed outcome recorded under ``OUT/failed_pairs/``. The outcome's row is the pair's change.csv row.
"""

from __future__ import annotations

import os
import socket
import time

from ..longitudinal import CompareOptions, compare
from .outcome import OK, CaseOutcome
from .pairs import VisitPair
from .runner import failure_outcome, kill_once_for_tests
from .store import CohortStore

#: Test hook as runner.KILL_ONCE_ENV, for the first comparison to finish writing.
KILL_PAIR_ONCE_ENV = "KNEESCOPE_COHORT_TEST_KILL_PAIR_ONCE"


def compare_options(settings: dict) -> CompareOptions:
    """The comparison's options from the pair's recorded settings (``CompareOptions.to_dict()``)."""
    from ..longitudinal.registration import RegistrationOptions

    fields = {key: value for key, value in settings.items() if key != "registration"}
    return CompareOptions(**fields, registration=RegistrationOptions(**settings.get("registration", {})))


def compare_pair(pair: VisitPair, visits: CohortStore, pairs: CohortStore) -> CaseOutcome:
    """Compare the pair's two analysed visits into OUT/pairs/<pair_id>/ (atomically); failures are returned."""
    start = time.perf_counter()
    attempt, details = None, None
    try:
        attempt, interrupted = pairs.start_attempt(pair.pair_id)
        change = compare(
            visits.case_dir(pair.baseline.case_id),
            visits.case_dir(pair.followup.case_id),
            options=compare_options(pair.compare_options),
        )
        change.write(attempt, analyses=False, make_zip=False)
        kill_once_for_tests(KILL_PAIR_ONCE_ENV)
        outcome = CaseOutcome(
            pair.pair_id,
            OK,
            round(time.perf_counter() - start, 3),
            row=change.csv_row(),
            warnings=change.warnings,
            timings_s=dict(change.provenance.get("timings_s", {})),
            inputs=pair.inputs(),
            interrupted_attempts=interrupted,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )
        pairs.commit(attempt, outcome)
        return outcome
    except Exception as exc:  # the cohort goes on: the pair becomes a failed outcome
        seconds = time.perf_counter() - start
        outcome, details = failure_outcome(pair.pair_id, exc, pairs, "the pair's change", pair.inputs(), seconds)
    finally:
        if attempt is not None:
            pairs.discard(attempt)
    pairs.record_failure(outcome, details)
    return outcome
