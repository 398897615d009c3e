"""Templated language for synthetic scenes: ScanRefer descriptions (also Scan2Cap references),
ScanQA questions, Multi3DRefer queries and SQA3D situated questions.

Descriptions use category, colour, size and spatial relations (nearest neighbour, wall /
corner), so that an object is sometimes the only one of its class (ScanRefer 'unique') and
sometimes one of several ('multiple'). Every generator is deterministic given its ``rng``.
"""

from __future__ import annotations

import re

import numpy as np

from vidllm.data.synthetic_layout import CATEGORIES, PALETTE, RoomLayout

__all__ = ["scene_language", "tokenize", "NUMBER_WORDS"]

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_PLURAL = {"box": "boxes", "bookshelf": "bookshelves", "trash can": "trash cans"}


def tokenize(text: str) -> list[str]:
    """ScanRefer-style tokens: lower-case words and punctuation marks."""
    return re.findall(r"[a-z0-9]+|[.,?!]", text.lower())


def _a(word: str) -> str:
    """Indefinite article for ``word``."""
    return "an" if word[:1] in "aeiou" else "a"


def _plural(name: str) -> str:
    return _PLURAL.get(name, name + "s")


def _wall_phrase(box: np.ndarray, size: tuple[float, float, float]) -> str:
    lo, hi = box[:3] - box[3:] / 2, box[:3] + box[3:] / 2
    near = [lo[0] < 0.3, hi[0] > size[0] - 0.3, lo[1] < 0.3, hi[1] > size[1] - 0.3]
    if sum(near) >= 2:
        return "in the corner of the room"
    if any(near):
        return "against the wall"
    return "away from the walls"


def scene_language(scene_id: str, layout: RoomLayout, rng: np.random.Generator) -> dict[str, list[dict]]:
    """All annotation records of one scene, keyed by kind ('scanrefer', 'scanqa', 'multi3drefer',
    'sqa3d_questions', 'sqa3d_annotations'); object ids index ``layout.objects`` offset by the
    structural objects (ids as written to the aggregation)."""
    objs = layout.objects
    first_id = len(layout.structure)
    boxes = np.stack([o.box for o in objs])
    centers = boxes[:, :3]
    dist = np.linalg.norm(centers[:, None, :2] - centers[None, :, :2], axis=-1) + np.eye(len(objs)) * 1e9
    volumes = boxes[:, 3:].prod(1)
    by_cat: dict[str, list[int]] = {}
    for i, o in enumerate(objs):
        by_cat.setdefault(o.category, []).append(i)

    def name(i: int) -> str:
        return f"{objs[i].color} {objs[i].category}"

    scanrefer, scanqa, multi = [], [], []
    for i, o in enumerate(objs):
        j = int(np.argmin(dist[i]))
        same = by_cat[o.category]
        descs = [f"this is {_a(o.color)} {o.color} {o.category}. it is next to the {name(j)}."]
        if len(same) > 1:
            order = sorted(same, key=lambda k: volumes[k])
            rank = "smallest" if order[0] == i else "largest" if order[-1] == i else None
            if rank:
                descs.append(
                    f"it is the {rank} of the {NUMBER_WORDS[min(len(same), 12)]} {_plural(o.category)} in the room. it is {o.color}."
                )
            else:
                descs.append(f"the {o.category} is {o.color} and it is {_wall_phrase(o.box, layout.size)}. the {name(j)} is close to it.")
        else:
            descs.append(f"there is {_a(o.color)} {o.color} {o.category} {_wall_phrase(o.box, layout.size)}.")
        for ann_id, text in enumerate(descs):
            scanrefer.append(
                {
                    "scene_id": scene_id,
                    "object_id": str(first_id + i),
                    "object_name": o.category.replace(" ", "_"),
                    "ann_id": str(ann_id),
                    "description": text,
                    "token": tokenize(text),
                }
            )
    # ScanQA: colour, count, location, size
    qa: list[tuple[str, list[str], list[int]]] = []
    for i, o in enumerate(objs):
        j = int(np.argmin(dist[i]))
        qa.append((f"what color is the {o.category} next to the {name(j)}?", [o.color], [i]))
        qa.append((f"where is the {name(i)} located?", [f"next to {name(j)}", _wall_phrase(o.box, layout.size)], [i]))
    for cat, members in by_cat.items():
        qa.append((f"how many {_plural(cat)} are in the room?", [NUMBER_WORDS[min(len(members), 12)]], members))
    if len(objs) >= 2:
        a, b = (int(k) for k in rng.choice(len(objs), 2, replace=False))
        bigger = a if volumes[a] >= volumes[b] else b
        qa.append((f"which is bigger, the {name(a)} or the {name(b)}?", [objs[bigger].category], [a, b]))
    for k, (question, answers, ids) in enumerate(qa):
        scanqa.append(
            {
                "scene_id": scene_id,
                "question_id": f"{scene_id}-{k}",
                "question": question,
                "answers": answers,
                "object_ids": [first_id + i for i in ids],
                "object_names": [objs[i].category.replace(" ", "_") for i in ids],
            }
        )
    # Multi3DRefer: zero / single / multiple targets
    ann = 0
    for cat, members in by_cat.items():
        multi.append(
            _m3(
                scene_id,
                cat,
                [first_id + i for i in members],
                ann,
                f"all the {_plural(cat)} in the room.",
                "mt" if len(members) > 1 else "st_wo_d",
            )
        )
        ann += 1
        colors = {objs[i].color for i in members}
        for color in sorted(colors):
            ids = [first_id + i for i in members if objs[i].color == color]
            kind = "mt" if len(ids) > 1 else ("st_w_d" if len(members) > 1 else "st_wo_d")
            multi.append(_m3(scene_id, cat, ids, ann, f"the {color} {cat}.", kind))
            ann += 1
        absent = sorted(set(PALETTE) - colors)
        if absent:
            color = absent[int(rng.integers(len(absent)))]
            multi.append(_m3(scene_id, cat, [], ann, f"the {color} {cat}.", "zt_w_d"))
            ann += 1
    missing = sorted(c for c, spec in CATEGORIES.items() if c not in by_cat and spec[1] == "floor")
    if missing:
        cat = missing[int(rng.integers(len(missing)))]
        multi.append(_m3(scene_id, cat, [], ann, f"the {cat} in the room.", "zt_wo_d"))
    questions, annotations = _sqa3d(scene_id, layout, centers, dist, by_cat, rng)
    return {"scanrefer": scanrefer, "scanqa": scanqa, "multi3drefer": multi, "sqa3d_questions": questions, "sqa3d_annotations": annotations}


def _m3(scene_id, cat, ids, ann_id, text, eval_type) -> dict:
    return {
        "scene_id": scene_id,
        "object_name": cat.replace(" ", "_"),
        "object_ids": ids,
        "ann_id": ann_id,
        "description": text,
        "eval_type": eval_type,
    }


def _sqa3d(scene_id, layout, centers, dist, by_cat, rng) -> tuple[list[dict], list[dict]]:
    """Situated questions: the agent stands next to one object, facing its nearest neighbour."""
    objs = layout.objects
    questions, annotations = [], []
    scene_num = int(scene_id[5:9])
    for k in range(min(3, len(objs))):
        i = int(rng.integers(len(objs)))
        j = int(np.argmin(dist[i]))
        direction = centers[j, :2] - centers[i, :2]
        yaw = float(np.arctan2(direction[1], direction[0]))
        pos = centers[i, :2] + 0.4 * direction / max(np.linalg.norm(direction), 1e-6)
        qid = scene_num * 1000000 + k
        others = by_cat[objs[j].category]
        situation = f"i am standing next to the {objs[i].color} {objs[i].category}, facing the {objs[j].category}."
        if k % 2 == 0:
            question, answer = f"what color is the {objs[j].category} in front of me?", objs[j].color
        else:
            question, answer = f"how many {_plural(objs[j].category)} are in the room?", NUMBER_WORDS[min(len(others), 12)]
        questions.append(
            {"scene_id": scene_id, "situation": situation, "alternative_situation": [], "question": question, "question_id": qid}
        )
        annotations.append(
            {
                "scene_id": scene_id,
                "question_type": "N/A",
                "answer_type": "other",
                "question_id": qid,
                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": 1}],
                "rotation": {"_x": 0.0, "_y": 0.0, "_z": float(np.sin(yaw / 2)), "_w": float(np.cos(yaw / 2))},
                "position": {"x": float(pos[0]), "y": float(pos[1]), "z": 0.0},
            }
        )
    return questions, annotations
