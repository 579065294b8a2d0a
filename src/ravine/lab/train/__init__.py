"""Real training: the seed's optimizers on real models and data (issue 4).

* :mod:`.data`: scikit-learn's digits (ships inside the package, no download), dense,
  one-hot "sparse" and 8×8 image views, a seeded train/validation/test split and a seeded
  mini-batch iterator;
* :mod:`.models`: softmax logistic regression, an MLP (optional dropout), a small CNN and
  a deep autoencoder;
* :mod:`.loop`: N epochs with any optimizer factory (a ravine optimizer or its
  torch.optim baseline), per-epoch records, reproducible and resumable from a checkpoint;
* :mod:`.protocol`: tune on the validation split with the same budget per optimizer, then
  several seeds, mean ± std;
* :mod:`.experiments`: the papers' comparisons (Kingma & Ba Figs. 1, 2 and 4, Zeiler's
  sensitivity, Sutskever et al.'s NAG vs Momentum);
* :mod:`.state_formats`: four of them again with float32, bfloat16 and 8-bit optimizer
  state.
"""

EXPERIMENTS = (
    "kingma-fig1",
    "kingma-fig2",
    "bias-correction",
    "sutskever",
    "zeiler",
    "state-formats",
)
"""The reproductions ``ravine train`` runs: :data:`.runs.RUNS` maps each to its
function and :data:`.report.RENDER` to its table and figure (kept here, apart from them, so
that the command line lists them without importing torch)."""
