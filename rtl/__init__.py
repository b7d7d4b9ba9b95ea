"""Amaranth gateware: neurosynaptic cores, the chip, and the PIM digital periphery."""
