"""Prediction heads of the reconstruction branch."""

from recon.heads.camera_head import CameraHead
from recon.heads.dpt import DPTDecoder, DPTHead

__all__ = ["CameraHead", "DPTDecoder", "DPTHead"]
