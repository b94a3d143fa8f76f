"""A group's batches: each member's are its solo run's."""

import torch

from rpn_exp.data.base import TensorBatches, standardize
from rpn_exp.run.stacked.data import MemberBatches, MemberLoader

K = 3


def member_splits():
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (50, 6), generator=g, dtype=torch.uint8), torch.arange(50) % 10) for _ in range(K)]


def test_member_batches_are_each_members_solo_batches():
    splits = member_splits()
    data = MemberBatches(splits, mean=[10.0, 20.0, 30.0], std=[2.0, 3.0, 4.0], seeds=[7, 8, 9], batch_size=16)
    members, epochs = [0, 2], [1, 4]
    stacked = list(data.batches(members, data.orders(epochs, members)))
    for position, k in enumerate(members):
        x, y = splits[k]
        solo = TensorBatches(x, y, 16, mean=data.mean[k].item(), std=data.std[k].item(), shuffle=True,
                             seed=data.seeds[k], epoch=lambda e=epochs[position]: e)
        for (xb, yb), (sx, sy) in zip(stacked, solo, strict=True):
            torch.testing.assert_close(xb[position], sx)
            assert torch.equal(yb[position], sy)
    assert [b[0].shape[1] for b in stacked] == [16, 16, 16, 2]
    unshuffled = next(iter(data.batches([1])))[0][0]
    torch.testing.assert_close(unshuffled, standardize(splits[1][0][:16], 20.0, 3.0))


def test_a_loader_draws_the_members_named_when_a_pass_starts_in_that_pass_order():
    data = MemberBatches(member_splits(), mean=[0.0] * K, std=[1.0] * K, seeds=[1, 2, 3], batch_size=16)
    members, epoch = [0, 1, 2], [0]
    loader = MemberLoader(data, lambda: members, lambda: epoch[0])
    first = [x for x, _ in loader]
    members[:], epoch[0] = [2], 3
    later = [x for x, _ in loader]
    assert len(loader) == 4 and first[0].shape[0] == 3 and later[0].shape[0] == 1
    expected = list(data.batches([2], data.orders([3], [2])))
    for x, (want, _) in zip(later, expected, strict=True):
        assert torch.equal(x, want)
