"""Video → metric, coloured point cloud (PLY) with cameras (JSON) and a PNG preview.

    python tools/export_pointcloud.py --checkpoint DIR|--vggt model.pt --video PATH --out scene.ply [--conf-threshold q] [--chunk-size N --overlap K]

Runs ``vidllm export-pointcloud`` with the same arguments (``vidllm export-pointcloud --help`` lists them). Needs the
package installed (``pip install -e .``), like the console script.
"""

import sys

from vidllm.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["export-pointcloud", *sys.argv[1:]]))
