"""The Spark side: ``SparkExecutor`` (in ``_executor``), its session, its job and its progress
bar, and the coordinator task of ``coordinator="cluster"``.

Nothing is imported here: a cluster's worker tasks load ``_cluster_task`` alone, never the
executor or the coordinator.
"""
