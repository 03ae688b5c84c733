"""External Touchpoint Engine: off-site exposure frequency planning with a feedback loop."""
