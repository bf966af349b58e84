"""Runnable versions of the notes' claims, one module per claim.

Each module has a library function that returns data (rows, arrays) and prints
nothing; ``keras_notes/cli/<name>.py`` prints the table and draws the plot.

- ``backprop``: a NumPy forward and backward pass checked against the backend's autodiff
  (``tf.GradientTape`` or ``jax.grad``).
- ``gradients``: per-layer gradient norms of a deep dense network, per initializer
  and activation (vanishing and exploding gradients).
- ``bias``: the bias as a threshold, with real ``Dense`` layers.
- ``l2``: L2 regularization on the notes' In[10] model.
- ``batch_size``: throughput and loss per batch size at a fixed epoch budget.

TensorFlow is imported inside the functions that need it (``gradients``, ``l2``,
``batch_size``), so that on the JAX backend ``backprop`` runs without it.
"""
