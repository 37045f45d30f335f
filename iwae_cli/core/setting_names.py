"""The names and fixed values of settings, in a module that imports nothing: the command line checks a command's
settings before Hydra starts a job (cli/overrides.py, specs/checks.py) without loading torch, and the modules
that act on each setting read the same tuple from here."""

from __future__ import annotations

# data/loading.py: auto fetches missing public files without asking; always is an alias of auto (older configs
# say it)
DOWNLOAD_MODES = ("auto", "ask", "always", "never")
SWEEP_METRICS = ("auto", "nll", "valid_nll_bound")  # tasks/train.py: what a sweep's job returns to its sweeper
LOSS_REDUCTIONS = ("sum", "mean")  # core/objectives.py: the authors' summed loss, or its mean over the minibatch
ANNEALS = ("step", "cosine")  # training/rates.py: the rate's course within a schedule's stage
SPLITS = ("test", "valid", "train")  # specs/evaluation.py: what an evaluation scores
# The config nodes a run's identity is made from (specs/identity.py): what changes the trained model. A
# second stage (switch-objective) takes them from its first run, except the objective and k it names.
IDENTITY_SOURCES = (
    "dataset", "arch", "model", "k", "seed", "schedule", "optim", "protocol", "loss_reduction", "parent"
)
