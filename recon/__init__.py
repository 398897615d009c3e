"""Reconstruction branch: geometry, aggregator, camera/DPT/metric-bin heads, alignment, VGGT loading."""
