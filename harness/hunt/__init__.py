"""Finding the failing fault schedule: ``harness replay`` (a run's schedule re-run N times, its
reproduction rate) and ``harness hunt`` (a Hypothesis search over schedules, guided by near
misses, then shrinking and a replay of the winner). Every run is an ordinary ``harness run``
process (``runs``); see docs/design.md, "Schedules" and "The hunt"."""
