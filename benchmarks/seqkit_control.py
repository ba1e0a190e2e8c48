"""The ``seqkit`` command line with session 27's two CPU changes switched off: the numpy ``tanh``
(``seqkit.nn.activation``) and the dW operand order (``seqkit.nn.dense.weight_grad``).

The arithmetic is then that of commit ``1d1af00`` (``torch.tanh`` everywhere, ``dW = g^T x``
always in that order), so a training run through it is the control for a quality re-run of
the current code (``recipes/asr/an4/README.md``, "Re-runs with 2 threads")::

    python benchmarks/seqkit_control.py train recipes/asr/an4/config.yaml --fresh train.seed=3 ...
"""

import sys

import seqkit.nn.dense as dense
from seqkit.cli.main import main
from seqkit.nn.activation import set_fast_tanh

set_fast_tanh(False)
dense.weight_grad = lambda grad_t, x_t: dense._mm_t(grad_t, x_t)  # (N, K), the direct order

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
