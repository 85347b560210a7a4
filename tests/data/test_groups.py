from collections import Counter

import pytest

from drywallqa.data.groups import parse_fractions, shared_groups, source_group, split_groups
from drywallqa.errors import ConfigError


@pytest.mark.parametrize(
    "name, group",
    [
        ("IMG_8207_JPG_jpg.rf.4f4448f3ce3129fb1c8e7d9129308454.jpg", "IMG_8207_JPG"),
        ("00002_jpg.rf.8e624e8f99c6870e88c0493db53c5725.jpg", "00002"),
        ("2000x1500_0_resized_jpg.rf.0123456789abcdef0123456789abcdef.jpg", "2000x1500_0_resized"),
        ("photo_png.rf.0123456789abcdef0123456789abcdef.png", "photo"),
        ("plain_photo.jpg", "plain_photo"),
        ("a.rf.notahash.jpg", "a.rf.notahash"),
    ],
)
def test_source_group(name, group):
    assert source_group(name) == group


def test_shared_groups():
    assert shared_groups({"train": ["a", "b"], "valid": ["b", "c"], "test": ["b"]}) == {"b": ["test", "train", "valid"]}


def test_split_groups_keeps_groups_whole_and_is_seeded():
    sizes = {f"g{i}": 1 + i % 4 for i in range(200)}
    fractions = parse_fractions("0.7,0.2,0.1")
    a = split_groups(sizes, fractions, seed=3)
    assert a == split_groups(dict(reversed(list(sizes.items()))), fractions, seed=3)  # order-independent
    assert a != split_groups(sizes, fractions, seed=4)
    images = Counter()
    for group, split in a.items():
        images[split] += sizes[group]
    total = sum(sizes.values())
    for split, frac in fractions.items():
        assert abs(images[split] / total - frac) < 0.03


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.8,0.1,0.1", {"train": 0.8, "valid": 0.1, "test": 0.1}),
        ("train=0.9,valid=0.1", {"train": 0.9, "valid": 0.1}),
        ([0.5, 0.5], {"train": 0.5, "valid": 0.5}),
    ],
)
def test_parse_fractions(text, expected):
    assert parse_fractions(text) == expected


@pytest.mark.parametrize("bad", ["0.5,0.4", "0.8,-0.1,0.3", "a,b", "0.25,0.25,0.25,0.25", ""])
def test_parse_fractions_rejects(bad):
    with pytest.raises(ConfigError):
        parse_fractions(bad)
