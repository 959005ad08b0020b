"""Hand-fused kernels for XLA's CPU backend, where XLA's own code leaves a large share of a step on the table.

Each is a C++ XLA FFI handler beside this module, compiled on first use with the machine's C++
compiler (`build`), and used only where it computes bit for bit what the Keras code it stands
in for computes (`adam`). Without a compiler the fused path runs Keras's code: the same results,
more slowly.
"""
