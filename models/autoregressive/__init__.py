r"""Autoregressive density models: FVSBN, NADE and MADE for binary vectors, RNADE for
real-valued ones.

Each model factorizes a D-dimensional binary vector by the chain rule,

.. math::

    p(x) = \prod_{d=1}^{D} p(x_{o_d} \mid x_{o_{<d}}), \qquad
    p(x_{o_d} = 1 \mid x_{o_{<d}}) = \sigma(\ell_d(x_{o_{<d}})),

for an ordering :math:`o` of the dimensions, and differs only in the logit
:math:`\ell_d`. As a Pyro model every conditional is one observed site, evaluated in a
single vectorized pass (teacher forcing): there is no latent variable, so
``pyrogen.fit(m, x, method="mle")`` maximizes the log-likelihood with the engine's
loop (minibatches with ``batch_size``). ``sample(n)`` draws the D conditionals in turn.

- **FVSBN** (fully visible sigmoid belief network; Frey 1998):
  :math:`\ell_d = b_d + \sum_{j<d} W_{dj} x_{o_j}`, a logistic regression per dimension
  (a strictly lower-triangular weight matrix).
- **NADE** (Larochelle and Murray 2011): a hidden layer shared across the conditionals,
  :math:`h_d = \sigma(c + W_{:, <d} x_{o_{<d}})`, :math:`\ell_d = b_d + V_d \cdot h_d`;
  the pre-activations are a running sum over d, so all D conditionals cost O(DH).
- **MADE** (Germain et al. 2015): an MLP whose weight matrices are masked so that
  output d sees only inputs before it in the ordering (Pyro's ``MaskedLinear`` layers).
  With ``num_masks`` > 1 it is trained order- and connectivity-agnostically: each
  training pass draws one of ``num_masks`` (ordering, hidden-degree) mask sets, all
  sharing the weights; ``log_prob`` is then the ensemble
  :math:`\log \frac1M \sum_m p_m(x)` (a proper mixture, the EoNADE idea of Uria et al.
  2014), whose training objective :math:`\mathbb E_m \log p_m(x)` is a lower bound of it.
- **DeepNADE** (Uria, Murray and Larochelle 2014): one ReLU MLP that reads the
  observed part of x and which dimensions are observed, :math:`[x \odot m, m]`, and
  gives :math:`p(x_j \mid x_S)` for every unobserved j at once, for any observed set
  S; an ordering o then defines :math:`p_o(x) = \prod_d p(x_{o_d} \mid x_{o_{<d}})`.
  It is trained order-agnostically, for all D! orderings at once: each example draws
  :math:`d \sim U\{1..D\}` and an ordering, and the site x counts the D - d + 1
  unobserved dimensions with weight D / (D - d + 1), an unbiased estimate of
  :math:`\log p_o(x)` whose mean over orderings is a lower bound of the ensemble's
  :math:`\log \frac1M \sum_m p_{o_m}(x)` (EoNADE). ``log_prob`` and ``sample`` use
  ``num_orderings`` fixed orderings; the first layer's pre-activation is a running
  sum along the ordering (NADE's trick), so the D conditionals of an ordering cost
  one pass of the upper layers per dimension, O(D H^2), not D whole passes.
  With ``steps`` = k > 1 it is NADE-k (Raiko, Li, Cho and Bengio 2014): the network
  is applied k times, each pass reading the observed values with the previous pass's
  probabilities filled in where x is unobserved, a learned mean-field-like inference
  whose last pass gives :math:`p(x_j \mid x_S)`; every conditional then costs k whole
  passes (no running sum: the filled-in values change with S).

- **PixelCNN** (van den Oord et al. 2016a, b): images in raster order. ``gated=True``
  (the default) stacks gated layers with a vertical stack that sees every row above
  and a horizontal stack that sees the pixels to the left, which together have no
  blind spot; ``gated=False`` is the original stack of convolutions whose kernels are
  masked so that a pixel's logit sees only the pixels above it and to its left (mask A
  on the first layer excludes the centre, mask B on the later ones includes it), whose
  receptive field misses a wedge to the upper right.
- **RNADE** (Uria, Murray and Larochelle 2013): NADE's shared hidden layer for real
  values, each conditional a mixture of K Gaussians whose weights, means and log-sds
  are linear in :math:`h_d` (one output layer per dimension).

The sequence models below read x as a sequence x_1..x_T (an image in raster order,
characters, a time series) and compute the features of every conditional from the
shifted inputs (position t is fed x_{t-1}, position 1 a learned start vector) in one
causal pass; the conditional is Bernoulli (binary data), categorical (``num_classes``
symbols: text) or a mixture of ``components`` Gaussians (standardized real values):

- **WaveNet** (van den Oord et al. 2016c): a stack of dilated causal 1-D convolutions
  (dilations 1, 2, 4, ..., kernel 2) with gated activations, residual and skip
  connections; by default enough layers that the receptive field covers the sequence.
  Sampling keeps each layer's input history and reads only its taps (Fast WaveNet,
  Paine et al. 2016): O(layers) per value.
- **RNNDecoder**: an LSTM or GRU over the shifted inputs; sampling carries the state.
- **TransformerDecoder** (GPT-2 style; Radford et al. 2019): learned position
  embeddings, pre-norm blocks of causal self-attention; sampling caches the keys and
  values of the positions drawn so far (``sample(n, cache=False)`` recomputes the
  prefix, for comparison).

References:
    Frey (1998). Graphical Models for Machine Learning and Digital Communication. MIT.
    Larochelle and Murray (2011). The Neural Autoregressive Distribution Estimator.
    Germain, Gregor, Murray and Larochelle (2015). MADE: Masked Autoencoder for
        Distribution Estimation. ICML.
    Uria, Murray and Larochelle (2014). A Deep and Tractable Density Estimator. ICML.
    Raiko, Li, Cho and Bengio (2014). Iterative Neural Autoregressive Distribution
        Estimator (NADE-k). NeurIPS.
    van den Oord, Kalchbrenner and Kavukcuoglu (2016a). Pixel Recurrent Neural
        Networks. ICML.
    van den Oord et al. (2016b). Conditional Image Generation with PixelCNN Decoders.
    van den Oord et al. (2016c). WaveNet: A Generative Model for Raw Audio.
    Paine et al. (2016). Fast Wavenet Generation Algorithm.
    Radford et al. (2019). Language Models are Unsupervised Multitask Learners.
    Uria, Murray and Larochelle (2013). RNADE: The real-valued neural autoregressive
        density-estimator. NeurIPS.
"""

from pyrogen.models.autoregressive.base import _Autoregressive
from pyrogen.models.autoregressive.deepnade import DeepNADE
from pyrogen.models.autoregressive.fvsbn import FVSBN
from pyrogen.models.autoregressive.made import MADE
from pyrogen.models.autoregressive.nade import NADE, RNADE
from pyrogen.models.autoregressive.pixelcnn import PixelCNN
from pyrogen.models.autoregressive.sequence import RNNDecoder, TransformerDecoder, WaveNet

__all__ = [
    "FVSBN",
    "NADE",
    "MADE",
    "DeepNADE",
    "RNADE",
    "PixelCNN",
    "WaveNet",
    "RNNDecoder",
    "TransformerDecoder",
    "_Autoregressive",
]
