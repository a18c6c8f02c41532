"""Ablation studies as ordinary Optuna studies.

:class:`LOCOSampler` makes the arms (the base, and one arm per feature, Keras layer or PyTorch
module, group of layers or named component left out; optionally pairs left out together, or
leave-one-in) the search space of a study and hands each (arm, repeat) out once, with fixed
or adaptive repeats. :class:`AblationSampler` runs any :class:`AblationPolicy` the same way:
:class:`AblationPath` (which of a tuned study's changes mattered) or a policy of your own. In
the objective, :func:`get_arm`, :func:`is_enabled`, :func:`ablate_data` and
:func:`ablate_model` turn the trial into its data and model. :func:`ablation_report`,
:func:`plot_ablation`, :func:`ablation_path_report` and :func:`plot_ablation_path` turn the
finished study into tables with confidence intervals and corrected tests, and plots.
:class:`ShapleyAblation` runs subsets of the components (all of them, or antithetic
permutations on a budget); :func:`shapley_report` and :func:`plot_shapley` give each
component's Shapley value with its interval, and the pairwise interactions.
:func:`importance_report` gives a tuning study's parameter importances (PED-ANOVA and
f-ANOVA) with intervals, and what to ablate next.

TensorFlow, Keras, PyTorch, pandas, SciPy, plotly and PySpark are imported only when a
function needs them.
"""

from optuna_spark.ablation._arm_specs import ArmSpec
from optuna_spark.ablation._arms import Arm
from optuna_spark.ablation._arms import get_arm
from optuna_spark.ablation._arms import is_enabled
from optuna_spark.ablation._data import ablate_data
from optuna_spark.ablation._data import drop_features
from optuna_spark.ablation._data import features_to_keep
from optuna_spark.ablation._importance import importance_report
from optuna_spark.ablation._keras import ablate_model
from optuna_spark.ablation._keras import remove_layers
from optuna_spark.ablation._loco import LOCOSampler
from optuna_spark.ablation._path import AblationPath
from optuna_spark.ablation._path_report import ablation_path_report
from optuna_spark.ablation._path_report import plot_ablation_path
from optuna_spark.ablation._plot import plot_ablation
from optuna_spark.ablation._policy import AblationHistory
from optuna_spark.ablation._policy import AblationPolicy
from optuna_spark.ablation._policy import LeaveOneIn
from optuna_spark.ablation._policy import LeaveOneOut
from optuna_spark.ablation._report import ablation_report
from optuna_spark.ablation._sampler import AblationSampler
from optuna_spark.ablation._shapley import ShapleyAblation
from optuna_spark.ablation._shapley_report import plot_shapley
from optuna_spark.ablation._shapley_report import shapley_report
from optuna_spark.ablation._torch import remove_modules

__all__ = [
    "AblationHistory",
    "AblationPath",
    "AblationPolicy",
    "AblationSampler",
    "Arm",
    "ArmSpec",
    "LOCOSampler",
    "LeaveOneIn",
    "LeaveOneOut",
    "ShapleyAblation",
    "ablate_data",
    "ablate_model",
    "ablation_path_report",
    "ablation_report",
    "drop_features",
    "features_to_keep",
    "get_arm",
    "importance_report",
    "is_enabled",
    "plot_ablation",
    "plot_ablation_path",
    "plot_shapley",
    "remove_layers",
    "remove_modules",
    "shapley_report",
]
