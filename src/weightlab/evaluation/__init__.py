"""Evaluating many weight settings of one model at once: every snapshot, and a plane of the loss surface.

Between training and analysis: these modules run the model (Keras, batched and jitted on JAX),
and hand numpy arrays to `weightlab.analysis`, which stays pure numpy.
"""
