"""What clients do: workload plug-ins (``workloads.base.Workload``), found through the
``harness.workloads`` entry point group (``workloads.registry``)."""
