"""Building blocks of the reconstruction branch: RoPE, UV position embedding, attention blocks."""

from recon.layers.block import Attention, Block, LayerScale, Mlp
from recon.layers.pos_embed import uv_grid, uv_position_embedding
from recon.layers.rope import RotaryEmbedding2D, patch_positions

__all__ = [
    "Attention",
    "Block",
    "LayerScale",
    "Mlp",
    "RotaryEmbedding2D",
    "patch_positions",
    "uv_grid",
    "uv_position_embedding",
]
