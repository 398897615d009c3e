"""Templated language for synthetic scenes: ScanRefer descriptions (also Scan2Cap references),
ScanQA questions, Multi3DRefer queries and SQA3D situated questions.

Descriptions use category, colour, size and spatial relations (nearest neighbour, wall /
corner), so that an object is sometimes the only one of its class (ScanRefer 'unique') and
sometimes one of several ('multiple'). Every generator is deterministic given its ``rng``.
"""

from __future__ import annotations

import re

import numpy as np

from vidllm.synthetic.layout import CATEGORIES, PALETTE, RoomLayout

__all__ = ["scene_language", "tokenize", "wall_phrase", "NUMBER_WORDS"]

NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
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


def wall_phrase(box: np.ndarray, size: tuple[float, float, float]) -> str:
    """Where an object stands relative to the walls (derivable from geometry): 'in the corner of the room'
    (near two walls), 'against the wall' (near one, within 0.3 m) or 'away from the walls'.

    Args:
        box: ``[6]`` aligned-world box ``[cx, cy, cz, dx, dy, dz]``; size: the room's ``(W, D, H)``.
    """
    return _wall_phrase(np.asarray(box, dtype=np.float64), size)


def scene_language(scene_id: str, layout: RoomLayout, rng: np.random.Generator, visible=None) -> dict[str, list[dict]]:
    """All annotation records of one scene, keyed by kind ('scanrefer', 'scanqa', 'multi3drefer',
    'sqa3d_questions', 'sqa3d_annotations'); object ids index ``layout.objects`` offset by the
    structural objects (ids as written to the aggregation).

    Only what the clip shows is asked about (``visible``: ``[O]`` bool per ``layout.objects``, default all):
    descriptions, questions and single-object queries target visible objects, and their neighbour
    references are the nearest *visible* other object. A statement about every instance of a category
    (a count, 'the smallest of the three chairs', 'all the chairs', a zero-target colour) is made only
    when every instance of the category is visible; a colour group ('the red chairs') only when all its
    members are. The 'where' question's first reference is the wall phrase (:func:`wall_phrase`), the
    'next to <colour> <category>' answer its second.
    """
    objs = layout.objects
    n = len(objs)
    visible = np.ones(n, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if visible.shape != (n,):
        raise ValueError(f"{scene_id}: visibility has shape {visible.shape}, expected ({n},) (one flag per object)")
    first_id = len(layout.structure)
    boxes = np.stack([o.box for o in objs])
    centers = boxes[:, :3]
    dist = np.linalg.norm(centers[:, None, :2] - centers[None, :, :2], axis=-1) + np.eye(n) * 1e9
    dist_visible = np.where(visible[None, :], dist, np.inf)  # neighbours are visible objects
    volumes = boxes[:, 3:].prod(1)
    seen = [i for i in range(n) if visible[i]]
    by_cat: dict[str, list[int]] = {}
    for i, o in enumerate(objs):
        by_cat.setdefault(o.category, []).append(i)
    complete = {cat: bool(visible[members].all()) for cat, members in by_cat.items()}

    def name(i: int) -> str:
        return f"{objs[i].color} {objs[i].category}"

    def neighbour(i: int) -> int | None:
        j = int(np.argmin(dist_visible[i]))
        return j if np.isfinite(dist_visible[i, j]) and dist_visible[i, j] < 1e8 else None

    scanrefer, scanqa, multi = [], [], []
    for i in seen:
        o, j = objs[i], neighbour(i)
        same = by_cat[o.category]
        near = f" it is next to the {name(j)}." if j is not None else ""
        descs = [f"this is {_a(o.color)} {o.color} {o.category}.{near}"]
        order = sorted(same, key=lambda k: volumes[k])
        rank = "smallest" if order[0] == i else "largest" if order[-1] == i else None
        if len(same) > 1 and complete[o.category] and rank:
            descs.append(
                f"it is the {rank} of the {NUMBER_WORDS[min(len(same), 12)]} {_plural(o.category)} in the room. it is {o.color}."
            )
        elif len(same) > 1:
            close = f" the {name(j)} is close to it." if j is not None else ""
            descs.append(f"the {o.category} is {o.color} and it is {_wall_phrase(o.box, layout.size)}.{close}")
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
    # ScanQA: colour, location, count, size
    qa: list[tuple[str, list[str], list[int]]] = []
    for i in seen:
        o, j = objs[i], neighbour(i)
        if j is not None:
            qa.append((f"what color is the {o.category} next to the {name(j)}?", [o.color], [i]))
        else:
            qa.append((f"what color is the {o.category}?", [o.color], [i]))
        answers = [_wall_phrase(o.box, layout.size)] + ([f"next to {name(j)}"] if j is not None else [])
        qa.append((f"where is the {name(i)} located?", answers, [i]))
    for cat, members in by_cat.items():
        if complete[cat]:
            qa.append((f"how many {_plural(cat)} are in the room?", [NUMBER_WORDS[min(len(members), 12)]], members))
    if len(seen) >= 2:
        a, b = (seen[int(k)] for k in rng.choice(len(seen), 2, replace=False))
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
        if complete[cat]:
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
            group = [i for i in members if objs[i].color == color]
            if not visible[group].all():
                continue
            kind = "mt" if len(group) > 1 else ("st_w_d" if len(members) > 1 else "st_wo_d")
            multi.append(_m3(scene_id, cat, [first_id + i for i in group], ann, f"the {color} {cat}.", kind))
            ann += 1
        absent = sorted(set(PALETTE) - colors)
        if absent and complete[cat]:
            color = absent[int(rng.integers(len(absent)))]
            multi.append(_m3(scene_id, cat, [], ann, f"the {color} {cat}.", "zt_w_d"))
            ann += 1
    missing = sorted(c for c, spec in CATEGORIES.items() if c not in by_cat and spec[1] == "floor")
    if missing:
        cat = missing[int(rng.integers(len(missing)))]
        multi.append(_m3(scene_id, cat, [], ann, f"the {cat} in the room.", "zt_wo_d"))
    questions, annotations = _sqa3d(scene_id, layout, centers, seen, neighbour, by_cat, complete, rng)
    return {
        "scanrefer": scanrefer,
        "scanqa": scanqa,
        "multi3drefer": multi,
        "sqa3d_questions": questions,
        "sqa3d_annotations": annotations,
    }


def _m3(scene_id, cat, ids, ann_id, text, eval_type) -> dict:
    return {
        "scene_id": scene_id,
        "object_name": cat.replace(" ", "_"),
        "object_ids": ids,
        "ann_id": ann_id,
        "description": text,
        "eval_type": eval_type,
    }


def _sqa3d(scene_id, layout, centers, seen, neighbour, by_cat, complete, rng) -> tuple[list[dict], list[dict]]:
    """Situated questions: the agent stands next to one visible object, facing its nearest visible neighbour;
    a count question only when every instance of the category is visible (else a colour question)."""
    objs = layout.objects
    questions, annotations = [], []
    scene_num = int(scene_id[5:9])
    if len(seen) < 2:
        return questions, annotations
    for k in range(min(3, len(seen))):
        i = seen[int(rng.integers(len(seen)))]
        j = neighbour(i)
        direction = centers[j, :2] - centers[i, :2]
        yaw = float(np.arctan2(direction[1], direction[0]))
        pos = centers[i, :2] + 0.4 * direction / max(np.linalg.norm(direction), 1e-6)
        qid = scene_num * 1000000 + k
        others = by_cat[objs[j].category]
        situation = f"i am standing next to the {objs[i].color} {objs[i].category}, facing the {objs[j].category}."
        if k % 2 == 0 or not complete[objs[j].category]:
            question, answer = f"what color is the {objs[j].category} in front of me?", objs[j].color
        else:
            question, answer = (
                f"how many {_plural(objs[j].category)} are in the room?",
                NUMBER_WORDS[min(len(others), 12)],
            )
        questions.append(
            {
                "scene_id": scene_id,
                "situation": situation,
                "alternative_situation": [],
                "question": question,
                "question_id": qid,
            }
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
