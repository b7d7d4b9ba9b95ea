"""The golden integer model, the bundle format, simulator flows and the command line."""
