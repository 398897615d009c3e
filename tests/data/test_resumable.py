"""The training loader resumes mid-epoch with exactly the batches an uninterrupted run sees."""

import torch

from vidllm.data.resumable import ResumableDataLoader, ResumableWeightedSampler


def _loader(seed=3):
    data = list(range(40))
    sampler = ResumableWeightedSampler(torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.1, num_samples=40, seed=seed)
    return ResumableDataLoader(data, batch_size=4, sampler=sampler)


def test_order_depends_only_on_seed_and_epoch():
    a, b = _loader(), _loader()
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    a.sampler.set_epoch(1)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]


def test_mid_epoch_state_round_trip():
    full = [x.tolist() for x in _loader()]
    first = _loader()
    seen = []
    for i, batch in enumerate(first):
        seen.append(batch.tolist())
        if i == 2:
            break
    state = first.state_dict()
    assert state == {"batches": 3, "epoch": 0}
    resumed = _loader()
    resumed.load_state_dict(state)
    rest = [x.tolist() for x in resumed]
    assert seen + rest == full
    assert resumed.state_dict()["batches"] == len(full)
