"""Population Based Training as an Optuna study, on trial checkpoints.

:class:`PBTSampler` runs a population of members, each a chain of trials (segments): every
trial trains one member for a while, starting from a checkpoint
(:func:`optuna_spark.checkpoint.load`: its own member's last one, or a better member's after
an exploit) and saving its own (:func:`optuna_spark.checkpoint.save`). :func:`get_segment`
tells an objective which segment it trains; :func:`pbt_report` and :func:`plot_pbt` read the
lineage back from the study; :func:`remove_superseded_checkpoints` frees the checkpoints no
segment can start from any more.

pandas and plotly are imported only by the report and the plot.
"""

from optuna_spark.pbt._checkpoints import remove_superseded_checkpoints
from optuna_spark.pbt._report import PBTReport
from optuna_spark.pbt._report import Segment
from optuna_spark.pbt._report import get_segment
from optuna_spark.pbt._report import pbt_report
from optuna_spark.pbt._report import plot_pbt
from optuna_spark.pbt._sampler import PBTSampler

__all__ = [
    "PBTReport",
    "PBTSampler",
    "Segment",
    "get_segment",
    "pbt_report",
    "plot_pbt",
    "remove_superseded_checkpoints",
]
