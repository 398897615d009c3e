"""The training loader resumes mid-epoch with exactly the batches an uninterrupted run sees."""

import torch

from vidllm.data.resumable import ResumableDataLoader, ResumableWeightedSampler


def _loader(seed=3):
    data = list(range(40))
    sampler = ResumableWeightedSampler(
        torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.1, num_samples=40, seed=seed
    )
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


def test_draw_keys_decode_to_the_epoch_order_and_number_every_draw():
    from vidllm.data.resumable import draw_key, split_draw_key

    weights = torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.1
    plain = ResumableWeightedSampler(weights, num_samples=40, seed=3)
    keyed = ResumableWeightedSampler(weights, num_samples=40, seed=3, draw_keys=True)
    draws = []
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        keyed.set_epoch(epoch)
        decoded = [split_draw_key(k, 40) for k in keyed]
        assert [i for i, _ in decoded] == list(plain)
        draws += [d for _, d in decoded]
    assert draws == list(range(1, 81))  # every draw over both epochs has its own number, none is 0
    assert split_draw_key(17, 40) == (17, 0) and split_draw_key(draw_key(17, 5, 40), 40) == (17, 5)


class _Echo(list):
    """A dataset whose item is the key it is asked for."""

    def __getitem__(self, key):
        return key


def test_resumed_loader_yields_the_same_draw_keys():
    weights = torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.1

    def loader():
        return ResumableDataLoader(
            _Echo(range(40)), batch_size=4, sampler=ResumableWeightedSampler(weights, 40, 3, draw_keys=True)
        )

    full = [x.tolist() for x in loader()]
    first, seen = loader(), []
    for i, batch in enumerate(first):
        seen.append(batch.tolist())
        if i == 1:
            break
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    assert seen + [x.tolist() for x in resumed] == full
    assert all(k >= 40 for batch in full for k in batch)  # every key carries a draw
