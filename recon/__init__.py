"""Reconstruction branch: geometry, aggregator, camera/DPT/metric-bin heads, alignment, VGGT loading."""


def from_vggt_checkpoint(path_or_state_dict, strict: bool = True, **overrides):
    """Build a standalone ``ReconstructionModel`` from an official VGGT checkpoint (see :mod:`recon.vggt_loader`)."""
    from recon.vggt_loader import from_vggt_checkpoint as _load

    return _load(path_or_state_dict, strict=strict, **overrides)


__all__ = ["from_vggt_checkpoint"]
