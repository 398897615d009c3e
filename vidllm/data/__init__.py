"""Data: readers of the real ScanNet-derived formats, clip sampling / preprocessing and the Lightning
DataModule. The synthetic scenes written in the same formats come from :mod:`vidllm.synthetic.world`.

Readers (each returns typed records and raises :class:`~vidllm.errors.DataError` naming file,
record index and field): :func:`load_scannet_scene`, :func:`read_scanrefer`, :func:`read_scanqa`,
:func:`read_sqa3d`, :func:`read_multi3drefer`, :func:`read_referit3d_csv`,
:func:`scan2cap_references`. The DataModule (``vidllm.data.datamodule``) imports Lightning and is
not imported here.
"""

from vidllm.data.annotations import (
    Multi3DReferRecord,
    ReferIt3DRecord,
    ScanQARecord,
    ScanReferRecord,
    SQA3DRecord,
    read_multi3drefer,
    read_referit3d_csv,
    read_scanqa,
    read_scanrefer,
    read_sqa3d,
    scan2cap_references,
    unique_multiple_flags,
)
from vidllm.data.clip import load_clip
from vidllm.data.labels import SCANREFER_CLASSES, LabelMap, read_label_map
from vidllm.data.scannet import ScanNetScene, SceneObjects, load_scannet_scene

__all__ = [
    "load_scannet_scene",
    "ScanNetScene",
    "SceneObjects",
    "read_scanrefer",
    "read_scanqa",
    "read_sqa3d",
    "read_multi3drefer",
    "read_referit3d_csv",
    "scan2cap_references",
    "unique_multiple_flags",
    "ScanReferRecord",
    "ScanQARecord",
    "SQA3DRecord",
    "Multi3DReferRecord",
    "ReferIt3DRecord",
    "LabelMap",
    "read_label_map",
    "SCANREFER_CLASSES",
    "load_clip",
]
