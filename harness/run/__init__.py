"""One run, in explicit stages that hand their data to each other in memory (``stages``):
prepare (a frozen ``RunPlan``) -> execute (one ``RunEnv`` once the servers are up) -> analyse
(``analyse``) -> render; with what they share: the run's config and its record, config.json
(``config``), the ops pipe and history writer (``recorder``), the worker processes' shared flags
(``workers``) and the store of run directories (``store``)."""

from .stages import Execution, RunPlan, RunResult, execute, prepare, run_test, stop_grace

__all__ = ["Execution", "RunPlan", "RunResult", "execute", "prepare", "run_test", "stop_grace"]
