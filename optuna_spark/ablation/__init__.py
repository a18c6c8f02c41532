"""Leave-one-component-out (LOCO) ablation as an ordinary Optuna study.

:class:`LOCOSampler` makes the arms (the base, and one arm per feature, Keras layer, group of
layers or named component left out) the search space of a study and hands each (arm, repeat)
out once. In the objective, :func:`get_arm`, :func:`is_enabled`, :func:`ablate_data` and
:func:`ablate_model` turn the trial into its data and model. :func:`ablation_report` and
:func:`plot_ablation` turn the finished study into a table with confidence intervals and
Holm-corrected tests against the base, and a plot.

TensorFlow, Keras, pandas, SciPy, plotly and PySpark are imported only when a function needs
them.
"""

from optuna_spark.ablation._arms import Arm
from optuna_spark.ablation._arms import get_arm
from optuna_spark.ablation._arms import is_enabled
from optuna_spark.ablation._data import ablate_data
from optuna_spark.ablation._data import drop_features
from optuna_spark.ablation._data import features_to_keep
from optuna_spark.ablation._keras import ablate_model
from optuna_spark.ablation._keras import remove_layers
from optuna_spark.ablation._plot import plot_ablation
from optuna_spark.ablation._report import ablation_report
from optuna_spark.ablation._sampler import LOCOSampler

__all__ = [
    "Arm",
    "LOCOSampler",
    "ablate_data",
    "ablate_model",
    "ablation_report",
    "drop_features",
    "features_to_keep",
    "get_arm",
    "is_enabled",
    "plot_ablation",
    "remove_layers",
]
