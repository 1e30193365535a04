"""Campaigns: many runs of backend x workload x nemesis cells, repeated with derived seeds, run in
parallel, resumable, sliced into shards, and summarised per cell with statistics.

- ``spec``: a TOML spec file and/or the command line's flags -> the campaign's cells;
- ``plan``: every run of the campaign (cell, repetition, derived seed) and the shard slices;
- ``execute``: the manifest (campaign.json), resume, and runs in parallel subprocesses;
- ``stats``: the Wilson interval and per-run and per-cell figures, computed from stored runs;
- ``gather``: stored campaign stores (shards) and run directories -> cells with their runs.
"""
