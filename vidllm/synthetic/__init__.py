"""The built-in synthetic world and what runs on it, kept apart from the real-data code.

* :mod:`vidllm.synthetic.world` (with :mod:`~vidllm.synthetic.layout` and :mod:`~vidllm.synthetic.text`):
  the scene generator behind ``vidllm synth``. It writes rooms of box furniture in the *real* ScanNet,
  ScanRefer / Scan2Cap, ScanQA, SQA3D and Multi3DRefer formats, so the real readers
  (:mod:`vidllm.data`) load it unchanged.
* :mod:`vidllm.synthetic.tiny_teachers`: the tiny VGGT-style geometry and CLIP-style semantic teachers
  trained on those scenes (``vidllm teachers``), saved in the file formats the real pretrained teachers
  come in (those are loaded by :mod:`vidllm.training.frozen_teachers`).
* :mod:`vidllm.synthetic.demo`: ``vidllm demo``, the end-to-end run (scenes → teachers → stage 1 →
  stage 2 → evaluation → export → report) on CPU with nothing to download.

The readers, samplers and DataModule for real data live in :mod:`vidllm.data`; the model, training and
evaluation code in the rest of :mod:`vidllm`. Nothing is imported here, so importing one submodule loads
only what it needs.
"""
